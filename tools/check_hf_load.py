#!/usr/bin/env python3
"""Show that transformers loads what PruneGym saves, and computes what PruneGym computes.

usage: check_hf_load.py MODEL_DIR [PRUNEGYM_OUT.safetensors INPUTS.safetensors]

Loads MODEL_DIR (written by `prunegym vlm train` or LlavaCheckpoint.save) with
`LlavaForConditionalGeneration.from_pretrained` — strict: any missing or unexpected key fails —
and runs it. With the optional files (the output of `prunegym vlm run --model MODEL_DIR --inputs
INPUTS --out PRUNEGYM_OUT`), it compares transformers' logits with PruneGym's and prints the
largest absolute difference. A development tool: needs torch and transformers.
"""
import sys
import torch
from safetensors.torch import load_file
from transformers import LlavaForConditionalGeneration

model_dir = sys.argv[1]
model, info = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32, output_loading_info=True)
problems = {k: v for k, v in info.items() if v}
if problems:
    sys.exit(f"transformers reported loading problems: {problems}")
print(f"loaded {model_dir} with transformers: {sum(p.numel() for p in model.parameters())} parameters, no missing or unexpected keys")
if len(sys.argv) == 4:
    ours = load_file(sys.argv[2])
    inputs = load_file(sys.argv[3])
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"]).logits
    diff = (logits - ours["logits"]).abs().max().item()
    print(f"max |logits(transformers) − logits(PruneGym)| = {diff:.2e}")
    sys.exit(0 if diff < 1e-4 else 1)
