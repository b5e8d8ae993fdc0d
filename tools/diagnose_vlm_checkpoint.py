#!/usr/bin/env python3
"""Diagnose a VLM training checkpoint with transformers (development tool).

Loads runs/vlm-train-0/checkpoints/trainer.safetensors into a transformers LLaVA built from a
PruneGym model directory with the same configuration (here /tmp/vlmq, written by a short
`prunegym vlm train`), runs one question over 16 preview images (`prunegym data preview --count 16
--out /tmp/shapes16 --split validation`), and prints how much the answer logits vary across images
and how much attention the answer position pays to the visual tokens per layer.
"""
import torch, numpy as np, zlib, struct
from safetensors.torch import load_file
from transformers import LlavaForConditionalGeneration
torch.set_num_threads(1)
model = LlavaForConditionalGeneration.from_pretrained('/tmp/vlmq', dtype=torch.float32, attn_implementation='eager').eval()
sd = load_file('/work/main/runs/vlm-train-0/checkpoints/trainer.safetensors')
model.load_state_dict({k[len('model.'):]: v for k, v in sd.items() if k.startswith('model.model.') or k.startswith('model.lm_head')}, strict=True)
vocab = open('/tmp/vlmq/vocab.txt').read().split()
ids = {w:i for i,w in enumerate(vocab)}
def read_png(path):
    data = open(path,'rb').read(); p=8; idat=b''
    while p < len(data):
        n=struct.unpack('>I',data[p:p+4])[0]; t=data[p+4:p+8]
        if t==b'IDAT': idat+=data[p+8:p+8+n]
        if t==b'IHDR': w,h=struct.unpack('>II',data[p+8:p+16])
        p+=12+n
    raw=zlib.decompress(idat); arr=np.frombuffer(raw,dtype=np.uint8).reshape(h, 1+3*w)[:,1:].reshape(h,w,3)
    return torch.tensor(arr/255.0*2-1, dtype=torch.float32).permute(2,0,1)
px = torch.stack([read_png(f'/tmp/shapes16/sample-{i:03d}.png') for i in range(16)])
q = "how many red objects are there".split()
seq = [1] + [ids[w] for w in q] + [ids['<image>']]*256 + [ids['?']]
input_ids = torch.tensor([seq]*16)
with torch.no_grad():
    out = model(input_ids=input_ids, pixel_values=px, output_attentions=True)
    logits = out.logits[:, -1]
    print('answers:', [vocab[i] for i in logits.argmax(-1).tolist()])
    print('logit std across images (mean over vocab):', logits.std(0).mean().item(), 'logit std across vocab:', logits.std(1).mean().item())
    for l, a in enumerate(out.attentions):
        att = a[:, :, -1, 1+len(q):1+len(q)+256].sum(-1).mean().item()
        ent = a[:, :, -1].clamp_min(1e-12); ent = -(ent*ent.log()).sum(-1).mean().item()
        print(f'layer {l}: attention mass of ? on visual tokens {att:.3f}, entropy {ent:.2f} (uniform over 264: {np.log(264):.2f})')
