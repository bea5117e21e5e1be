"""Dream steps per second (one batched forward pass of M per step, through ``DreamEnv``) at
batch 1 and 1024, against the real env's steps per second (one env, random actions).

    .venv/bin/python benchmarks/dream_throughput.py
    .venv/bin/python benchmarks/dream_throughput.py --env CartPole-v1 --device cuda

The world model has the env preset's sizes (CartPole: latent 8, LSTM 64; CarRacing: latent
32, LSTM 256, 5 Gaussians) with untrained weights: the cost of a step does not depend on
training. Median of 5 timed repeats after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from worldmodels.config import resolve
from worldmodels.dream import DreamEnv, Dreaming, StartStates
from worldmodels.envs import action_to_env, make_env, probe, random_action
from worldmodels.models.memory import build_memory
from worldmodels.models.vision import build_vision
from worldmodels.training.memory import memory_kwargs
from worldmodels.training.vision import vision_kind, vision_kwargs
from worldmodels.world_model import WorldModel


def real_steps_per_s(env_id: str, seconds: float) -> float:
    cfg = resolve(env_id, [], {}, {})
    spec = probe(cfg.env)
    env = make_env(cfg.env)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    rates = []
    for _ in range(5):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            _, _, term, trunc, _ = env.step(action_to_env(random_action(spec, rng), spec))
            n += 1
            if term or trunc:
                env.reset()
        rates.append(n / (time.perf_counter() - t0))
    env.close()
    return statistics.median(rates)


def dream_steps_per_s(env_id: str, batch: int, steps: int, device: torch.device) -> float:
    cfg = resolve(env_id, [], {}, {})
    spec = probe(cfg.env)
    torch.manual_seed(0)
    vision = build_vision(vision_kind(cfg, spec), vision_kwargs(cfg, spec)).to(device).eval()
    memory = build_memory(cfg.memory.kind, memory_kwargs(cfg, spec)).to(device).eval()
    world = WorldModel(vision, memory, spec, device)
    n = 256
    z = torch.randn(n, cfg.vision.latent_dim, device=device)
    starts = StartStates(z, world.initial(n), torch.ones(n, dtype=torch.bool))
    env = DreamEnv(world, starts, batch, Dreaming(horizon=10**9))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = np.stack([random_action(spec, rng) for _ in range(batch)])
    for _ in range(10):
        env.step(actions)
    rates = []
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(batch * steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", nargs="+", default=["CartPole-v1", "CarRacing-v3"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch threads {torch.get_num_threads()}, device {device}"
    )
    print(
        "| env | real env steps/s (1 env) | dream steps/s, batch 1 | dream steps/s, batch 1024 "
        "| batch 1024 / real |"
    )
    print("|---|---|---|---|---|")
    for env_id in args.env:
        real = real_steps_per_s(env_id, 1.0)
        one = dream_steps_per_s(env_id, 1, 200, device)
        big = dream_steps_per_s(env_id, 1024, 20, device)
        print(
            f"| {env_id} | {real:,.0f} | {one:,.0f} | {big:,.0f} | {big / real:.1f}x |", flush=True
        )


if __name__ == "__main__":
    main()
