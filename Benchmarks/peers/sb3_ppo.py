#!/usr/bin/env python3
"""Peer for GymBench: Stable-Baselines3 PPO on CartPole-v1 with PruneGym's CartPole preset.

Same hyperparameters and sample count as `PPOConfiguration.cartPole` (rl-baselines3-zoo's tuned
PPO): 8 environments x 32 steps, one minibatch of 256, 20 epochs, gamma 0.98, GAE lambda 0.8,
learning rate 1e-3 and clip range 0.2 both annealed linearly to 0, no entropy bonus, value
coefficient 0.5, gradient-norm clip 0.5, separate 64-64 tanh actor and critic with orthogonal
initialisation, Adam eps 1e-5. Prints one JSON line: wall-clock seconds of learn() and the
deterministic evaluation return over 20 episodes.

Exit code 3 (with a message on stderr) when stable-baselines3 or gymnasium is not installed.
"""
import argparse
import json
import sys
import time

try:
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
except ImportError as error:  # the benchmark skips this peer
    print(f"sb3_ppo.py: {error}; pip install stable-baselines3 gymnasium", file=sys.stderr)
    sys.exit(3)


def linear(start):
    return lambda progress_remaining: progress_remaining * start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()

    env = make_vec_env("CartPole-v1", n_envs=8, seed=args.seed)
    model = PPO(
        "MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8,
        learning_rate=linear(1e-3), clip_range=linear(0.2), ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh),
        seed=args.seed, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    seconds = time.perf_counter() - start

    returns = []
    eval_env = gym.make("CartPole-v1")
    for episode in range(args.episodes):
        obs, _ = eval_env.reset(seed=1_000_000 + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = eval_env.step(int(action))
            total += reward
            done = terminated or truncated
        returns.append(total)
    print(json.dumps({"seconds": seconds, "steps": model.num_timesteps, "mean": float(np.mean(returns)),
                      "std": float(np.std(returns)), "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
