"""Scale-out on this machine: CMA-ES generation time and collection throughput with the local
executor and with Ray, at 1 and 2 workers, plus what one task costs to ship.

    .venv/bin/python benchmarks/scaleout.py [--generations 3]

CMA-ES rows evaluate a population of 64 x 4 rollouts on CartPole-v1 in 4 blocks (tasks), the
default. "late" samples the population around a trained controller (episodes of ~500 steps, as
late in training); "early" samples it around zero (short episodes: overhead dominates). The
local executor at 1 worker runs tasks in this process; Ray at 1 worker uses one remote worker.
Prints one Markdown table and the bytes per task.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _trained_run(work: Path):
    from worldmodels import pipeline

    ctx = pipeline.open_run(
        work / "cartpole", "CartPole-v1", [], None, [], 0, "cpu", resume=True, progress=False
    )
    pipeline.train(ctx, "classic", set())
    return ctx


def _generation_seconds(
    ctx, params: np.ndarray, executor: str, workers: int, generations: int
) -> tuple[float, int, int]:
    from worldmodels.controllers.linear import PolicyShape
    from worldmodels.training.population import PopulationEvaluator, PopulationTask

    ctx.cfg.parallel.executor, ctx.cfg.controller.workers = executor, workers
    kw = ctx.run.load("controller/best")["model"]["kwargs"]
    shape = PolicyShape(kw["in_dim"], kw["out_dim"], tuple(kw["hidden"]))
    evaluator = PopulationEvaluator(ctx.run, ctx.cfg, ctx.spec, shape, ctx.device)
    try:
        evaluator.evaluate(params, [0, 1, 2, 3], 4)  # warm-up: workers load V and M once
        t0, steps = time.perf_counter(), 0
        for g in range(generations):
            _, s = evaluator.evaluate(params, [10 * g + r for r in range(4)], 4)
            steps += s
        seconds = (time.perf_counter() - t0) / generations
    finally:
        evaluator.close()
    block = params[:16]
    task_bytes = len(
        pickle.dumps(PopulationTask(first=0, params=block, seeds=(0, 1, 2, 3), **evaluator.base))
    )
    return seconds, steps // generations, task_bytes


def _collect_rate(executor: str, workers: int, episodes: int, work: Path) -> tuple[float, int]:
    from worldmodels.config import EnvConfig
    from worldmodels.data.collect import CollectTask, collect, run_collect_task
    from worldmodels.data.store import EpisodeStore
    from worldmodels.envs import probe

    cfg = EnvConfig(id="CartPole-v1")
    spec = probe(cfg)
    store = EpisodeStore(work / f"collect_{executor}_{workers}")
    t0 = time.perf_counter()
    collect(store, cfg, spec, episodes, 0, workers=workers, progress=False, executor=executor)
    rate = episodes / (time.perf_counter() - t0)
    from dataclasses import asdict

    task = CollectTask((0,), (0,), asdict(cfg), spec.to_dict(), "random")
    return rate, len(pickle.dumps(run_collect_task(task)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=400)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wm_scaleout_"))
    rows = []
    try:
        ctx = _trained_run(work)
        best = ctx.run.load("controller/best")["model"]["state_dict"]["params"].numpy()
        rng = np.random.default_rng(0)
        pops = {
            "late": best + rng.normal(0, 0.05, (64, best.size)),
            "early": rng.normal(0, 0.5, (64, best.size)),
        }
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.perf_counter() - t0
        for phase, params in pops.items():
            for executor in ("local", "ray"):
                for workers in (1, 2):
                    sec, steps, nbytes = _generation_seconds(
                        ctx, params, executor, workers, args.generations
                    )
                    rows.append(
                        (
                            f"CMA-ES generation ({phase}), {executor}, {workers} worker(s)",
                            f"{sec:.2f} s",
                            f"{steps / sec:,.0f} env steps/s; "
                            f"{steps:,} steps/gen; task {nbytes:,} B",
                        )
                    )
        for executor in ("local", "ray"):
            for workers in (1, 2):
                rate, nbytes = _collect_rate(executor, workers, args.episodes, work)
                rows.append(
                    (
                        f"collect CartPole-v1, {executor}, {workers} worker(s)",
                        f"{rate:,.0f} episodes/s",
                        f"one episode ships back as {nbytes:,} B",
                    )
                )
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; Ray local start-up "
        f"{ray_start:.1f} s (not in the rows)"
    )
    print("| measurement | time or rate | notes |\n|---|---|---|")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")


if __name__ == "__main__":
    main()
