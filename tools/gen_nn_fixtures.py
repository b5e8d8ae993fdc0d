"""Reference values from PyTorch for the NN tests (Tests/Fixtures/torch/nn-reference.safetensors).

usage: python3 tools/gen_nn_fixtures.py OUT.safetensors
Holds: optimizer trajectories (SGD variants, Adam, AdamW: parameter after each of 5 steps from a
fixed start and fixed gradients), losses with their gradients (cross-entropy with ignore index and
label smoothing, BCE with logits and weights, Huber, MSE), gradient-norm clipping, and multi-head
attention (grouped-query, causal + padding masks, rotary) and a pre-norm encoder layer computed
with torch from given weights.
"""
import sys
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(0)
out = {}

# Optimizers
p0 = torch.randn(3, 4)
grads = torch.randn(5, 3, 4)
out["opt.p0"] = p0
out["opt.grads"] = grads
configs = {
    "sgd": lambda p: torch.optim.SGD([p], lr=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda p: torch.optim.Adam([p], lr=0.01, weight_decay=0.1),
    "adamw": lambda p: torch.optim.AdamW([p], lr=0.01, weight_decay=0.1, eps=1e-5),
}
for name, make in configs.items():
    p = torch.nn.Parameter(p0.clone())
    opt = make(p)
    traj = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        traj.append(p.detach().clone())
    out[f"opt.{name}"] = torch.stack(traj)

# Losses
logits = torch.randn(6, 5, requires_grad=True)
targets = torch.tensor([1, 4, -100, 0, 2, 4])
ce = F.cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.1)
ce.backward()
out["ce.logits"], out["ce.targets"] = logits.detach(), targets
out["ce.loss"], out["ce.grad"] = ce.detach().reshape(1), logits.grad.clone()

x = (3 * torch.randn(4, 3)).requires_grad_()
t = torch.rand(4, 3)
w = (torch.rand(4, 3) > 0.3).float()
bce = F.binary_cross_entropy_with_logits(x, t, weight=w)
bce.backward()
out["bce.logits"], out["bce.targets"], out["bce.weights"] = x.detach(), t, w
out["bce.loss"], out["bce.grad"] = bce.detach().reshape(1), x.grad.clone()

pr = torch.randn(10, requires_grad=True)
ta = torch.randn(10)
hub = F.huber_loss(pr, ta, delta=0.7)
hub.backward()
out["huber.prediction"], out["huber.target"] = pr.detach(), ta
out["huber.loss"], out["huber.grad"] = hub.detach().reshape(1), pr.grad.clone()
mse = F.mse_loss(pr.detach(), ta)
out["mse.loss"] = mse.reshape(1)

# Gradient clipping
a = torch.nn.Parameter(torch.zeros(3, 3)); a.grad = torch.randn(3, 3)
b = torch.nn.Parameter(torch.zeros(5)); b.grad = 2 * torch.randn(5)
out["clip.a"], out["clip.b"] = a.grad.clone(), b.grad.clone()
norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm=1.5)
out["clip.norm"] = norm.reshape(1)
out["clip.a_clipped"], out["clip.b_clipped"] = a.grad.clone(), b.grad.clone()

# Attention: 4 query heads, 2 key/value heads, head size 4, model size 8, with biases.
B, T, D, H, KV, HD = 2, 5, 8, 4, 2, 4
xa = torch.randn(B, T, D)
Wq, bq = torch.randn(H * HD, D) * 0.4, torch.randn(H * HD) * 0.1
Wk, bk = torch.randn(KV * HD, D) * 0.4, torch.randn(KV * HD) * 0.1
Wv, bv = torch.randn(KV * HD, D) * 0.4, torch.randn(KV * HD) * 0.1
Wo, bo = torch.randn(D, H * HD) * 0.4, torch.randn(D) * 0.1
pad = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])

def rotate_half(v):
    h = v.shape[-1] // 2
    return torch.cat((-v[..., h:], v[..., :h]), dim=-1)

def attention(x, causal, rope):
    q = (x @ Wq.T + bq).view(B, T, H, HD).transpose(1, 2)
    k = (x @ Wk.T + bk).view(B, T, KV, HD).transpose(1, 2)
    v = (x @ Wv.T + bv).view(B, T, KV, HD).transpose(1, 2)
    if rope:
        inv = 1.0 / (10000 ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD))
        freqs = torch.arange(T).float()[:, None] * inv[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
    mask = torch.zeros(B, 1, T, T)
    mask = mask.masked_fill(pad[:, None, None, :] == 0, float("-inf"))
    if causal:
        mask = mask + torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return o.transpose(1, 2).reshape(B, T, H * HD) @ Wo.T + bo

out["attn.x"], out["attn.padding"] = xa, pad.float()
for n, t_ in [("q", (Wq, bq)), ("k", (Wk, bk)), ("v", (Wv, bv)), ("o", (Wo, bo))]:
    out[f"attn.{n}_proj.weight"], out[f"attn.{n}_proj.bias"] = t_
out["attn.out"] = attention(xa, causal=False, rope=False)
out["attn.out_causal_rope"] = attention(xa, causal=True, rope=True)

# Pre-norm encoder layer: x + attn(LN1 x); + fc2(gelu(fc1(LN2 x))), 2 heads of 4, MLP 16.
layer = {}
layer["layer_norm1.weight"], layer["layer_norm1.bias"] = 1 + 0.1 * torch.randn(D), 0.1 * torch.randn(D)
layer["layer_norm2.weight"], layer["layer_norm2.bias"] = 1 + 0.1 * torch.randn(D), 0.1 * torch.randn(D)
for n in ["q_proj", "k_proj", "v_proj", "out_proj"]:
    layer[f"self_attn.{n}.weight"], layer[f"self_attn.{n}.bias"] = 0.3 * torch.randn(D, D), 0.1 * torch.randn(D)
layer["mlp.fc1.weight"], layer["mlp.fc1.bias"] = 0.3 * torch.randn(16, D), 0.1 * torch.randn(16)
layer["mlp.fc2.weight"], layer["mlp.fc2.bias"] = 0.3 * torch.randn(D, 16), 0.1 * torch.randn(D)
h = F.layer_norm(xa, (D,), layer["layer_norm1.weight"], layer["layer_norm1.bias"], 1e-5)
q = F.linear(h, layer["self_attn.q_proj.weight"], layer["self_attn.q_proj.bias"]).view(B, T, 2, 4).transpose(1, 2)
k = F.linear(h, layer["self_attn.k_proj.weight"], layer["self_attn.k_proj.bias"]).view(B, T, 2, 4).transpose(1, 2)
v = F.linear(h, layer["self_attn.v_proj.weight"], layer["self_attn.v_proj.bias"]).view(B, T, 2, 4).transpose(1, 2)
o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, D)
y = xa + F.linear(o, layer["self_attn.out_proj.weight"], layer["self_attn.out_proj.bias"])
m = F.layer_norm(y, (D,), layer["layer_norm2.weight"], layer["layer_norm2.bias"], 1e-5)
y = y + F.linear(F.gelu(F.linear(m, layer["mlp.fc1.weight"], layer["mlp.fc1.bias"])), layer["mlp.fc2.weight"], layer["mlp.fc2.bias"])
for n, t_ in layer.items():
    out["encoder." + n] = t_
out["encoder.out"] = y

save_file({k: v.contiguous().float() if v.dtype != torch.int64 else v for k, v in out.items()}, sys.argv[1],
          metadata={"torch": torch.__version__})
