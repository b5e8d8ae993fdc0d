#!/usr/bin/env python3
"""Peer for GymBench: raw CartPole-v1 stepping throughput in Gymnasium.

Single environment (`gym.make`, with its TimeLimit/OrderEnforcing/PassiveEnvChecker wrappers),
the synchronous vector environment of 8 copies (`gym.make_vec(..., vectorization_mode="sync")`)
and Gymnasium's native NumPy-batched CartPoleVectorEnv (`vectorization_mode="vector_entry_point"`).
Actions follow a fixed pattern (no policy), resets on episode end. Prints one JSON line of steps/s.
Exit code 3 when gymnasium is not installed.
"""
import json
import sys
import time

try:
    import gymnasium as gym
    import numpy as np
except ImportError as error:
    print(f"gymnasium_throughput.py: {error}; pip install gymnasium", file=sys.stderr)
    sys.exit(3)


def single(steps):
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    start = time.perf_counter()
    for t in range(steps):
        _, _, terminated, truncated, _ = env.step(t % 2 if t % 7 else 1)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector(steps, mode, count=8):
    env = gym.make_vec("CartPole-v1", num_envs=count, vectorization_mode=mode)
    env.reset(seed=0)
    actions = [np.array([(t + i) % 2 for i in range(count)]) for t in range(16)]
    start = time.perf_counter()
    for t in range(steps // count):
        env.step(actions[t % 16])
    return (steps // count) * count / (time.perf_counter() - start)


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(json.dumps({"single": single(steps), "sync8": vector(steps, "sync"), "native8": vector(steps, "vector_entry_point")}))
