"""Planning in a continuous action space: CEM and MPPI with a learned M against a random policy
and the same planner with an untrained M, on the same evaluation episodes; decisions per second.

    .venv/bin/python benchmarks/continuous_planning.py                       # Pendulum-v1, seed 0
    .venv/bin/python benchmarks/continuous_planning.py --seeds 0 1 2 --episodes 20

Per seed: `worldmodels train --env ENV --method mpc --seed S --no-eval` (the env's mpc preset:
for Pendulum-v1, PETS-style CEM with an ensemble of 3 residual models on the state, 2,000 real
steps) in benchmarks/runs/continuous/<env>/mpc_s<seed>/ (resumed if interrupted), then four
policies on the same evaluation seeds:
  random      uniform actions in the bounds
  untrained   the planner (CEM) with a freshly initialised V and M (the same architecture)
  cem, mppi   the planners with the trained M
All evaluation envs of one policy are stepped together, so one "decision" is one action for
one env; decisions/s is env steps / wall time of the whole evaluation, one math thread.
Results are cached per seed in results.json; delete it to measure again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from worldmodels import pipeline
from worldmodels.data.rollout import EnvPool, RandomPolicy, run_batch

ROOT = Path(__file__).parent / "runs" / "continuous"
POLICIES = ["random", "untrained", "cem", "mppi"]


def train(run_dir: Path, env: str, seed: int, extra: list[str]) -> None:
    if (run_dir / "mpc.json").exists() and json.loads((run_dir / "mpc.json").read_text()).get(
        "complete"
    ):
        return
    cmd = [sys.executable, "-m", "worldmodels", "train", "--run-dir", str(run_dir), "--quiet"]
    cmd += ["--no-eval"]
    if (run_dir / "config.yaml").exists():
        cmd.append("--resume")
    else:
        cmd += ["--env", env, "--method", "mpc", "--seed", str(seed)]
    for item in extra:
        cmd += ["--set", item]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training {run_dir} failed (exit {done.returncode})")


def measure(ctx: pipeline.Context, name: str, episodes: int, seed: int) -> dict[str, float]:
    cfg = ctx.cfg
    seeds = [cfg.seed + cfg.evaluate.seed_offset + k for k in range(episodes)]
    if name == "random":
        policy = RandomPolicy(ctx.spec, np.random.default_rng(seed))
    else:
        kind = "cem" if name == "untrained" else name
        policy = pipeline.planner_policies(ctx, pipeline.world_model(ctx), kind)(episodes)
    pool = EnvPool(cfg.env)
    t0 = time.perf_counter()
    try:
        result = run_batch(pool, ctx.spec, policy, seeds)
    finally:
        pool.close()
    wall = time.perf_counter() - t0
    return {
        "mean_return": float(result.returns.mean()),
        "std_return": float(result.returns.std()),
        "decisions_per_s": float(result.lengths.sum() / wall),
    }


def run_seed(env: str, seed: int, episodes: int, extra: list[str]) -> dict[str, dict]:
    base = ROOT / env.replace("/", "_")
    trained_dir, untrained_dir = base / f"mpc_s{seed}", base / f"untrained_s{seed}"
    cache = trained_dir / "results.json"
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("episodes") == episodes:
            return cached["policies"]
    train(trained_dir, env, seed, extra)
    ctx = pipeline.open_run(trained_dir, progress=False, device="cpu")
    # the untrained baseline: the same config, V and M at their initialisation
    un = pipeline.open_run(
        untrained_dir, env, [], None, ["method=mpc", *extra], seed, "cpu", progress=False
    )
    pipeline.init_untrained_world(un)
    out: dict[str, dict] = {}
    for name in POLICIES:
        out[name] = measure(un if name == "untrained" else ctx, name, episodes, seed)
        print(f"  seed {seed} {name}: {out[name]}", flush=True)
    real = json.loads((trained_dir / "mpc.json").read_text())["real_env_steps"]
    out["cem"]["real_env_steps"] = out["mppi"]["real_env_steps"] = real
    cache.write_text(json.dumps({"episodes": episodes, "policies": out}, indent=2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="Pendulum-v1")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--set", action="append", default=[], dest="extra", metavar="KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    results = {s: run_seed(args.env, s, args.episodes, args.extra) for s in args.seeds}
    print(f"\n{args.env}, {args.episodes} evaluation episodes per seed, seeds {args.seeds}")
    print("| policy | mean return, per seed | mean over seeds | decisions/s (mean) |")
    print("|---|---|---|---|")
    for name in POLICIES:
        rows = [results[s][name] for s in args.seeds]
        per_seed = " / ".join(f"{r['mean_return']:.1f} ± {r['std_return']:.1f}" for r in rows)
        mean = np.mean([r["mean_return"] for r in rows])
        dps = np.mean([r["decisions_per_s"] for r in rows])
        print(f"| {name} | {per_seed} | {mean:.1f} | {dps:,.0f} |")


if __name__ == "__main__":
    main()
