"""Scale-out on this machine: CMA-ES generation time and collection throughput with the local
executor and with Ray, at 1 and 2 workers, plus what one task costs to ship.

    .venv/bin/python benchmarks/scaleout.py [--generations 6]

CMA-ES rows evaluate a population of 64 candidates x 4 rollouts on CartPole-v1 in 4 blocks
(tasks), the default. "late" samples the population around a trained controller (episodes of
~500 steps, as late in training); "early" samples it around zero (short episodes: per-task
overhead dominates).

This 2-core VM's speed drifts by up to 2x between minutes, more than the difference being
measured. So the local and Ray executors are timed in alternation, one generation each, with
Ray's daemons running for both, and the Ray overhead is the median over those pairs of
(Ray time / local time - 1). The in-process row (local, 1 worker: what `controller.workers=1`
does, with 2 torch threads) is timed before Ray starts.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from budgets import print_table


def _trained_run(work: Path):
    from worldmodels import pipeline

    ctx = pipeline.open_run(
        work / "cartpole", "CartPole-v1", [], None, [], 0, "cpu", resume=True, progress=False
    )
    pipeline.train(ctx, "classic", set())
    return ctx


def _evaluator(ctx, kind: str, workers: int):
    from worldmodels.controllers.linear import PolicyShape
    from worldmodels.parallel import LocalExecutor
    from worldmodels.training.population import PopulationEvaluator

    ctx.cfg.controller.workers = workers
    ctx.cfg.parallel.executor = kind
    kw = ctx.run.load("controller/best")["model"]["kwargs"]
    shape = PolicyShape(kw["in_dim"], kw["out_dim"], tuple(kw["hidden"]))
    evaluator = PopulationEvaluator(ctx.run, ctx.cfg, ctx.spec, shape, ctx.device)
    if kind == "local" and workers == 1:  # a worker process, like Ray's, not this process
        evaluator.executor.close()
        evaluator.executor = LocalExecutor(1)
    evaluator.evaluate(ctx.params, [0, 1, 2, 3], 4)  # warm-up: workers load V and M once
    return evaluator


def _one_generation(evaluator, params: np.ndarray, g: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    _, steps = evaluator.evaluate(params, [10 * g + r for r in range(4)], 4)
    return time.perf_counter() - t0, steps


def _in_process(ctx, params: np.ndarray, generations: int) -> tuple[float, int]:
    from worldmodels.controllers.linear import PolicyShape
    from worldmodels.training.population import PopulationEvaluator

    ctx.cfg.controller.workers, ctx.cfg.parallel.executor = 1, "local"
    kw = ctx.run.load("controller/best")["model"]["kwargs"]
    shape = PolicyShape(kw["in_dim"], kw["out_dim"], tuple(kw["hidden"]))
    evaluator = PopulationEvaluator(ctx.run, ctx.cfg, ctx.spec, shape, ctx.device)
    evaluator.evaluate(params, [0, 1, 2, 3], 4)
    runs = [_one_generation(evaluator, params, g) for g in range(generations)]
    evaluator.close()
    return float(np.median([t for t, _ in runs])), runs[0][1]


def _collect_rate(executor: str, workers: int, episodes: int, work: Path) -> float:
    from worldmodels.config import EnvConfig
    from worldmodels.data.collect import collect
    from worldmodels.data.store import EpisodeStore
    from worldmodels.envs import probe

    cfg = EnvConfig(id="CartPole-v1")
    store = EpisodeStore(work / f"collect_{executor}_{workers}_{time.monotonic_ns()}")
    t0 = time.perf_counter()
    collect(store, cfg, probe(cfg), episodes, 0, workers=workers, progress=False, executor=executor)
    return episodes / (time.perf_counter() - t0)


def _task_bytes(ctx, params: np.ndarray) -> tuple[int, int]:
    from worldmodels.config import EnvConfig
    from worldmodels.data.collect import CollectTask, run_collect_task
    from worldmodels.envs import probe
    from worldmodels.training.population import PopulationTask

    evaluator = _evaluator(ctx, "local", 2)
    population = len(
        pickle.dumps(
            PopulationTask(first=0, params=params[:16], seeds=(0, 1, 2, 3), **evaluator.base)
        )
    )
    evaluator.close()
    cfg = EnvConfig(id="CartPole-v1")
    task = CollectTask((0,), (0,), asdict(cfg), probe(cfg).to_dict(), "random")
    return population, len(pickle.dumps(run_collect_task(task)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generations", type=int, default=6)
    ap.add_argument("--episodes", type=int, default=400)
    args = ap.parse_args()
    import ray

    work = Path(tempfile.mkdtemp(prefix="wm_scaleout_"))
    rows: list[tuple[str, str, str]] = []
    try:
        ctx = _trained_run(work)
        best = ctx.run.load("controller/best")["model"]["state_dict"]["params"].numpy()
        rng = np.random.default_rng(0)
        pops = {
            "late": best + rng.normal(0, 0.05, (64, best.size)),
            "early": rng.normal(0, 0.5, (64, best.size)),
        }
        ctx.params = pops["early"]
        for phase, params in pops.items():
            sec, steps = _in_process(ctx, params, args.generations)
            rows.append(
                (
                    f"CMA-ES generation ({phase}), in this process (workers=1)",
                    f"{sec:.2f} s",
                    f"{steps / sec:,.0f} env steps/s, {steps:,} steps",
                )
            )
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.perf_counter() - t0
        for phase, params in pops.items():
            for workers in (1, 2):
                local, remote = _evaluator(ctx, "local", workers), _evaluator(ctx, "ray", workers)
                pairs = []
                for g in range(args.generations):
                    t_local, steps = _one_generation(local, params, g)
                    t_ray, _ = _one_generation(remote, params, g)
                    pairs.append((t_local, t_ray))
                local.close()
                remote.close()
                t_l = float(np.median([a for a, _ in pairs]))
                t_r = float(np.median([b for _, b in pairs]))
                overhead = float(np.median([b / a - 1 for a, b in pairs]))
                rows.append(
                    (
                        f"CMA-ES generation ({phase}), local, {workers} worker process(es)",
                        f"{t_l:.2f} s",
                        f"{steps / t_l:,.0f} env steps/s",
                    )
                )
                rows.append(
                    (
                        f"CMA-ES generation ({phase}), Ray, {workers} worker(s)",
                        f"{t_r:.2f} s",
                        f"{steps / t_r:,.0f} env steps/s; Ray overhead "
                        f"{overhead:+.0%} (median of {len(pairs)} paired generations)",
                    )
                )
        for workers in (1, 2):
            for executor in ("local", "ray"):
                rate = _collect_rate(executor, workers, args.episodes, work)
                rows.append(
                    (
                        f"collect CartPole-v1, {executor}, {workers} worker(s)",
                        f"{rate:,.0f} episodes/s",
                        f"{args.episodes} random episodes, worker start-up included",
                    )
                )
        population_bytes, episode_bytes = _task_bytes(ctx, pops["late"])
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; Ray local start-up "
        f"{ray_start:.1f} s (not in the rows); a population task (16 candidates x "
        f"{best.size} params) pickles to {population_bytes:,} B, a CartPole episode "
        f"shipped back to {episode_bytes:,} B"
    )
    print_table("measurement | time or rate | notes", rows)


if __name__ == "__main__":
    main()
