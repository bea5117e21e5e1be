"""Every training method on one env, several seeds: mean return over 100 real evaluation
episodes and the real env steps each method consumed, as one table.

    .venv/bin/python benchmarks/imagination.py                                   # CartPole, 3 seeds
    .venv/bin/python benchmarks/imagination.py --env LunarLander-v3 --methods wm-ppo --seeds 0

Each run is `worldmodels train --method M --seed S` with the env's (and method's) presets, in
benchmarks/runs/imagination/<env>/<method>_s<seed>/; a finished run (eval.json) is not redone,
an interrupted one continues with --resume, so a killed benchmark picks up where it stopped.
Runs go one after another with one math thread each (timings are comparable).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
from budgets import train_command

ROOT = Path(__file__).parent / "runs" / "imagination"


def run_one(env: str, method: str, seed: int, extra: list[str]) -> dict:
    run_dir = ROOT / env.replace("/", "_") / f"{method}_s{seed}"
    eval_path = run_dir / "eval.json"
    if eval_path.exists():
        return json.loads(eval_path.read_text())
    cmd = train_command(run_dir, env, method, seed, extra, sets_on_resume=True)
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env_vars, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"error": tail[0]}
    return json.loads(eval_path.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--methods", nargs="+", default=["classic", "dream", "a2c", "wm-ppo"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--set", action="append", default=[], dest="extra", metavar="KEY=VALUE")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        "| method | mean return (100 eps), per seed | mean ± std over seeds | real env steps "
        "(mean) | training wall time (mean) |"
    )
    print("|---|---|---|---|---|")
    for method in args.methods:
        results = [run_one(args.env, method, s, args.extra) for s in args.seeds]
        ok = [r for r in results if "error" not in r]
        errors = [r["error"] for r in results if "error" in r]
        per_seed = " / ".join(f"{r['mean_return']:.1f}" for r in ok)
        if errors:
            per_seed += f" ({len(errors)} failed: {errors[0]})"
        means = np.array([r["mean_return"] for r in ok]) if ok else np.array([np.nan])
        steps = np.mean([r["real_env_steps"] for r in ok]) if ok else float("nan")
        wall = np.mean([r["wall_seconds"] for r in ok]) if ok else float("nan")
        print(
            f"| {method} | {per_seed} | {means.mean():.1f} ± {means.std():.1f} | "
            f"{steps:,.0f} | {wall:.0f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
