#!/usr/bin/env python3
"""Peer for VLMBench: the same LLaVA weights in Hugging Face transformers on CPU.

Measures, like VLMBench, encode (get_image_features) + prefill of [prefix, kept visual tokens,
question] through the language model + the answer logits at the last position, at batch 1 and 16,
for each kept fraction; median milliseconds over repeats, torch.inference_mode, given thread count.
Prints one JSON line. Exit code 3 when torch or transformers is missing.
"""
import argparse, json, sys, time

try:
    import torch
    from transformers import LlavaForConditionalGeneration
except ImportError as error:
    print(f"hf_llava.py: {error}; pip install torch transformers", file=sys.stderr)
    sys.exit(3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--fractions", default="1,0.333,0.222,0.111")
    p.add_argument("--question-tokens", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = LlavaForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    vc = model.config.vision_config
    n_tokens = (vc.image_size // vc.patch_size) ** 2
    emb = model.get_input_embeddings()
    results = {}
    with torch.inference_mode():
        for batch in (1, 16):
            pixels = torch.randn(batch, 3, vc.image_size, vc.image_size)
            prefix = torch.ones(batch, 1, dtype=torch.long)
            question = torch.randint(4, 20, (batch, args.question_tokens))
            for fraction in [float(f) for f in args.fractions.split(",")]:
                kept = max(1, round(n_tokens * fraction))
                keep = torch.arange(kept) * n_tokens // kept
                def run():
                    feats = model.get_image_features(pixel_values=pixels, vision_feature_layer=model.config.vision_feature_layer,
                                                     vision_feature_select_strategy=model.config.vision_feature_select_strategy)
                    if not torch.is_tensor(feats):
                        feats = getattr(feats, "pooler_output", feats)
                        if isinstance(feats, (list, tuple)):
                            feats = torch.stack(list(feats))
                    feats = feats.reshape(batch, -1, feats.shape[-1])
                    embeds = torch.cat([emb(prefix), feats[:, keep], emb(question)], dim=1)
                    hidden = model.model.language_model(inputs_embeds=embeds).last_hidden_state
                    return model.lm_head(hidden[:, -1])
                for _ in range(3):
                    run()
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    run()
                    times.append((time.perf_counter() - start) * 1000)
                times.sort()
                results[f"{batch}@{fraction}"] = times[len(times) // 2]
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "ms": results}))


if __name__ == "__main__":
    main()
