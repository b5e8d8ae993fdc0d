#!/bin/sh
# Reproduces models/shapes-llava from scratch: one training run (runs/vlm-train-0) in eight
# stages, each continuing from the previous stage's checkpoint, and a ninth that starts from
# the eighth's model directory (its checkpoint was not kept when stage 9 was first trained). The learning-rate schedule is
# a cosine over the stage's --samples, so each stage re-spreads what remains of it; stages 5-8
# restart it (schedule_start, a warm restart) where the previous stage ended.
# About 7.1 h on 2 cores (58 + 68 + 11 + 58 + 50 + 69 + 47 + 33 + 27 min and the test evaluations).
set -e
cd "$(dirname "$0")/../../.."
T=models/shapes-llava/training
P=".build/release/prunegym"
swift build -c release --product prunegym
# 1. 120k samples: the dense vision objective (10k), then answers with the routing objective.
$P vlm train --config $T/stage-1.json --samples 120000 --run-dir runs/vlm-train-0 --out runs/shapes-llava-120k
# 2. The same recipe continued to 300k samples.
$P vlm train --config $T/stage-1.json --samples 300000 --run-dir runs/vlm-train-0 --out runs/shapes-llava-300k
# 3. The relation probe added, the schedule spread over 480k samples; stop at 328k.
$P vlm train --config $T/stage-3.json --samples 480000 --stop-after 328000 --run-dir runs/vlm-train-0
# 4. Object-centred pruned subsets added (the recipe's defaults today), to 480k samples.
$P vlm train --config $T/stage-4.json --samples 480000 --run-dir runs/vlm-train-0 --out runs/shapes-llava-480k
# 5. The asked-relation probe added (the recipe's defaults today), a warm restart at 3e-4 to 600k.
$P vlm train --config $T/stage-5.json --samples 600000 --run-dir runs/vlm-train-0 --out runs/shapes-llava-600k
# 6. Count questions three times as often (family_weights), a warm restart at 1.5e-4 to 740k.
$P vlm train --config $T/stage-6.json --samples 740000 --run-dir runs/vlm-train-0 --out runs/shapes-llava-740k
# 7. Compare questions also more often, a warm restart at 1e-4 to 840k.
$P vlm train --config $T/stage-7.json --samples 840000 --run-dir runs/vlm-train-0 --out runs/shapes-llava-840k
# 8. More answers from subsets (pruned_share 0.6), 40% of them keeping only the question's objects
#    whole and a random share of the rest (referent_subset_share), a warm restart at 1e-4 to 920k.
$P vlm train --config $T/stage-8.json --samples 920000 --run-dir runs/vlm-train-0 --out runs/shapes-llava-920k
# 9. Half of the answers from subsets cut inside the LLM (llm_cut_share 0.5): every token through
#    layer 0, the subset after it, as FastV and tprl-llm prune; from stage 8's weights with fresh
#    objective heads and optimizer (--init), a warm restart at 1e-4 from 920k to 984k.
$P vlm train --config $T/stage-9.json --samples 984000 --init runs/shapes-llava-920k --run-dir runs/vlm-train-0-stage-9 --out models/shapes-llava
