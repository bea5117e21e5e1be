"""Every method on the same envs and seeds, one comparison: what each costs (real env steps,
wall time) and what it reaches, and -- from the learning curves -- the real env steps each
needed to reach the env's solved threshold, as a ratio to PPO's.

    .venv/bin/python benchmarks/suite.py                                  # every env below
    .venv/bin/python benchmarks/suite.py --env CartPole-v1 --methods ppo mpc --seeds 0

Each run is `worldmodels train --env E --method M --seed S` with the env's (and method's)
presets plus the budget overrides below, in benchmarks/runs/suite/<env>/<method>_s<seed>/. A
finished run (eval.json) is read back, an interrupted one continues with --resume, so a killed
suite picks up where it stopped. Runs go one after another with one math thread each. The
tables come from `worldmodels compare` and are written, with the command and the machine, into
benchmarks/RESULTS.md (the section of each env is replaced, the others are kept).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

from worldmodels.evaluation.compare import compare, expand, load_run, steps_to_threshold

HERE = Path(__file__).parent
ROOT = HERE / "runs" / "suite"
RESULTS = HERE / "RESULTS.md"
METHODS = ["ppo", "classic", "dream", "a2c", "wm-ppo", "mpc"]
SEEDS = [0, 1, 2]

# per env: the methods run and their budget overrides (on top of the env/method presets).
# The pixel envs get budgets far below what they need (GPU-days in the papers).
SUITE: dict[str, dict[str, list[str]]] = {
    "CartPole-v1": {m: [] for m in METHODS},
    "LunarLander-v3": {
        "ppo": [],
        "classic": [
            "collect.episodes=200",
            "vision.epochs=10",
            "memory.epochs=10",
            "controller.population=32",
            "controller.rollouts=2",
            "controller.generations=30",
            "controller.eval_every=5",
        ],
        "wm-ppo": [],
    },
    "CarRacing-v3": {
        "ppo": ["env.max_episode_steps=200", "ppo.total_steps=100000", "evaluate.episodes=10"],
        "classic": [
            "env.max_episode_steps=200",
            "collect.episodes=20",
            "vision.epochs=5",
            "memory.epochs=10",
            "controller.population=16",
            "controller.rollouts=1",
            "controller.generations=10",
            "evaluate.episodes=10",
        ],
    },
}


def run_one(env: str, method: str, seed: int, extra: list[str]) -> Path:
    run_dir = ROOT / env.replace("/", "_") / f"{method}_s{seed}"
    if (run_dir / "eval.json").exists():
        return run_dir
    cmd = [sys.executable, "-m", "worldmodels", "train", "--run-dir", str(run_dir), "--quiet"]
    if (run_dir / "config.yaml").exists():
        cmd.append("--resume")
    else:
        cmd += ["--env", env, "--method", method, "--seed", str(seed)]
        for item in extra:
            cmd += ["--set", item]
    print(f"  {env} {method} seed {seed} ...", flush=True)
    done = subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"  {env} {method} seed {seed} failed: {tail}", flush=True)
    return run_dir


def ratios(env_dir: Path) -> str:
    """Real env steps to the solved threshold: each method against PPO (median over seeds)."""
    runs = [load_run(p) for p in expand([env_dir]) if (p / "eval.json").exists()]
    by_method: dict[str, list[int | None]] = {}
    for r in runs:
        by_method.setdefault(r.method, []).append(steps_to_threshold(r.curve, r.threshold))

    def median(values: list[int | None]) -> float | None:
        reached = sorted(v for v in values if v is not None)
        return float(reached[len(reached) // 2]) if reached else None

    ppo = median(by_method.get("ppo", []))
    lines = [
        "| method | real env steps to threshold (median over seeds that reached it) | "
        "seeds that reached it | ratio to PPO |",
        "|---|---|---|---|",
    ]
    for method, values in by_method.items():
        m = median(values)
        reached = f"{sum(v is not None for v in values)}/{len(values)}"
        ratio = f"{m / ppo:.3f}" if m is not None and ppo else "—"
        steps = f"{m:,.0f}" if m is not None else "never"
        lines.append(f"| {method} | {steps} | {reached} | {ratio} |")
    return "\n".join(lines)


def write_results(env: str, section: str) -> None:
    head = "# Benchmark suite results\n\nWritten by `benchmarks/suite.py`; one section per env.\n"
    text = RESULTS.read_text() if RESULTS.exists() else head
    marker = f"<!-- suite:{env} -->"
    block = f"{marker}\n{section}\n{marker.replace('suite:', 'end:')}"
    pattern = re.compile(
        re.escape(marker) + r".*?" + re.escape(marker.replace("suite:", "end:")), re.S
    )
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    RESULTS.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", choices=list(SUITE), help="repeatable")
    ap.add_argument("--methods", nargs="+", choices=METHODS)
    ap.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    args = ap.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, CPU only, one math thread per run"
    for env in args.env or list(SUITE):
        methods = [m for m in SUITE[env] if not args.methods or m in args.methods]
        for method in methods:
            for seed in args.seeds:
                run_one(env, method, seed, SUITE[env][method])
        env_dir = ROOT / env.replace("/", "_")
        finished = [p for p in expand([env_dir]) if (p / "eval.json").exists()]
        if not finished:
            continue
        table, _ = compare(finished, env_dir)
        command = "python benchmarks/suite.py --env " + env
        section = (
            f"## {env}\n\nCommand: `{command}` (seeds {args.seeds}); machine: {machine}; "
            f"{date.today().isoformat()}.\nLearning curves: "
            f"`{env_dir.relative_to(HERE.parent)}/compare_{env.replace('/', '_')}.png`.\n\n"
            f"{table}\n\nReal env steps to the solved threshold (first learning-curve point at "
            f"or above it; the curve is the mean return of the policies acting in training):\n\n"
            f"{ratios(env_dir)}\n"
        )
        write_results(env, section)
        print(section, flush=True)


if __name__ == "__main__":
    main()
