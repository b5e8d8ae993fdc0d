"""PyTorch peer for TensorBench: the same training steps on CPU with the same thread count.

usage: python3 Benchmarks/peers/torch_step.py --threads 2 --steps 10
Prints one JSON object: milliseconds per step (median) for
  transformer: 2-layer pre-norm encoder, d=128, 4 heads, MLP 512, 256 tokens, batch 16,
               forward + backward + AdamW;
  mlp:         16 → 64 → 64 → 4 tanh MLP at batch 64, forward + backward + AdamW;
  inference:   forward of the transformer under torch.inference_mode().
"""
import argparse, json, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Layer(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        a = F.scaled_dot_product_attention(split(self.q(h)), split(self.k(h)), split(self.v(h)))
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def timed(step, steps, warmup=3):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    encoder = nn.Sequential(Layer(128, 4, 512), Layer(128, 4, 512))
    x = torch.randn(16, 256, 128)
    target = torch.randn(16, 256, 128)
    opt = torch.optim.AdamW(encoder.parameters(), lr=1e-4)

    def transformer_step():
        opt.zero_grad(set_to_none=True)
        F.mse_loss(encoder(x), target).backward()
        opt.step()

    mlp = nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))
    mx, my = torch.randn(64, 16), torch.randn(64, 4)
    mopt = torch.optim.AdamW(mlp.parameters(), lr=1e-4)

    def mlp_step():
        mopt.zero_grad(set_to_none=True)
        F.mse_loss(mlp(mx), my).backward()
        mopt.step()

    def inference():
        with torch.inference_mode():
            encoder(x)

    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "transformer_ms": timed(transformer_step, args.steps),
        "mlp_ms": timed(mlp_step, max(args.steps * 100, 500), warmup=50),
        "inference_ms": timed(inference, args.steps),
    }))


if __name__ == "__main__":
    main()
