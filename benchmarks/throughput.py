"""Throughput on this machine: raw env steps/s, env steps/s while CMA-ES evaluates a whole
population (V + M + C in the loop, batched), and collection episodes/s with 1 and 2 workers.

    .venv/bin/python benchmarks/throughput.py [--env CartPole-v1] [--population 64]

Prints a Markdown table. Numbers, not assertions: run it on the machine you care about.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from budgets import print_table

from worldmodels.config import EnvConfig
from worldmodels.data.collect import collect
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import make_env, probe

# torch-heavy modules are imported inside functions: collection workers are spawned processes
# that re-import this script, and a worker that never needs torch should not pay for it.


def raw_steps_per_second(env_id: str, steps: int) -> float:
    env = make_env(EnvConfig(id=env_id))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def population_steps_per_second(
    env_id: str, population: int, rollouts: int, work: Path
) -> tuple[float, int]:
    from worldmodels import pipeline
    from worldmodels.controllers.linear import PolicyShape
    from worldmodels.data.rollout import EnvPool
    from worldmodels.training.cmaes import controller_kwargs, evaluate_params

    ctx = pipeline.open_run(
        work / "pop",
        env_id,
        [],
        None,
        ["collect.episodes=40", "vision.epochs=2", "memory.epochs=2"],
        0,
        "cpu",
        resume=True,
        progress=False,
    )
    for stage in ("collect", "vision", "memory"):
        pipeline.STAGES[stage](ctx)
    world = pipeline.world_model(ctx)
    kw = controller_kwargs(ctx.cfg, world, ctx.spec)
    shape = PolicyShape(kw["in_dim"], kw["out_dim"], tuple(kw["hidden"]))
    params = np.random.default_rng(0).normal(0, 0.5, (population, shape.num_params))
    pool = EnvPool(ctx.cfg.env)
    seeds = list(range(rollouts))
    evaluate_params(pool, ctx.spec, world, shape, params[:2], seeds[:1])  # warm up
    t0 = time.perf_counter()
    total = 0
    for gen in range(3):
        _, steps = evaluate_params(
            pool, ctx.spec, world, shape, params, [s + gen * 10 for s in seeds]
        )
        total += steps
    pool.close()
    return total / (time.perf_counter() - t0), total


def collection_episodes_per_second(
    env_id: str, episodes: int, workers: int, work: Path, max_steps: int = 0
) -> tuple[float, float]:
    cfg = EnvConfig(id=env_id, max_episode_steps=max_steps)
    spec = probe(cfg)
    store = EpisodeStore(work / f"collect_{env_id.replace('/', '_')}_{workers}")
    t0 = time.perf_counter()
    collect(store, cfg, spec, episodes, master_seed=0, workers=workers, progress=False)
    dt = time.perf_counter() - t0
    return episodes / dt, store.summary()["env_steps"] / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--population", type=int, default=64)
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--episodes", type=int, default=200, help="episodes per vector-env row")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wm_throughput_"))
    try:
        raw = raw_steps_per_second(args.env, 20_000)
        pop, pop_steps = population_steps_per_second(args.env, args.population, args.rollouts, work)
        rows = [
            ("raw env, 1 env, random actions", f"{raw:,.0f} env steps/s", ""),
            (
                f"CMA-ES population eval ({args.population} x {args.rollouts} envs, V+M+C batched)",
                f"{pop:,.0f} env steps/s",
                f"{pop_steps:,} steps over 3 generations",
            ),
        ]
        collect_rows = [
            ("CartPole-v1", args.episodes, 0),
            ("LunarLander-v3", args.episodes, 0),
            ("CarRacing-v3", 16, 200),
        ]
        for env_id, episodes, cap in collect_rows:
            for workers in (1, 2):
                eps, steps = collection_episodes_per_second(env_id, episodes, workers, work, cap)
                capped = f", episodes capped at {cap} steps" if cap else ""
                rows.append(
                    (
                        f"collect {env_id}, random policy, {workers} worker(s)",
                        f"{eps:,.1f} episodes/s",
                        f"{steps:,.0f} env steps/s, "
                        f"{episodes} episodes incl. worker start-up{capped}",
                    )
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print_table("measurement | rate | notes", rows)


if __name__ == "__main__":
    main()
