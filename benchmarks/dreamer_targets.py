"""Issue 15's targets for `--method dreamer`: per env, 5 seeds of the env's dreamer preset,
100 evaluation episodes each, the interquartile mean with its bootstrap interval beside the
mean (`worldmodels compare`), and per seed the score, real env steps, wall time and the real
env steps at which the learning curve first reached the target.

    .venv/bin/python benchmarks/dreamer_targets.py                      # CartPole, Pendulum
    .venv/bin/python benchmarks/dreamer_targets.py --env Pendulum-v1 --seeds 0 1 --lanes 1
    .venv/bin/python benchmarks/dreamer_targets.py --env LunarLander-v3 --seeds 0 1

The runs are the suite's (benchmarks/runs/suite/<env>/dreamer_s<seed>, so `suite.py` reads
them back); `--lanes` runs go side by side, one math thread each (the wall times below are
measured so: two runs sharing the 2 cores). Written into benchmarks/RESULTS.md under
`dreamer:<env>`. `--threads N` (N > 1) gives each run N math threads instead, recorded in its
config.yaml, with its runs in benchmarks/runs/dreamer_threads<N> and its section under
`dreamer:<env>:threads<N>` (the thread count changes the float rounding, so these are other
runs, not the same runs faster):

    .venv/bin/python benchmarks/dreamer_targets.py --env CartPole-v1 --lanes 1 --threads 2

A probe -- the preset with `--set` items on top -- is named: its runs go to
benchmarks/runs/dreamer_<name>, its section is `dreamer:<env>:<name>`:

    .venv/bin/python benchmarks/dreamer_targets.py --env LunarLander-v3 --seeds 0 1 \
        --set dreamer.entropy_floor=0.4 --name entropy-floor

Each finished run is also kept as a committed record (benchmarks/records/, see records.py), so
seeds run on another machine, in another session, count in the table while the presets they
were run with are today's: `--seeds 0 1 2 3 4` runs only the seeds that have neither.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from hostspeed import describe
from suite import ROOT, run_one, write_results

from worldmodels.errors import UserError, run_main
from worldmodels.evaluation.compare import compare, load_run, steps_to_threshold

# env -> (target score, real env step budget, wall-time budget per seed in s or None)
TARGETS = {
    "CartPole-v1": (475.0, 10_000, 15 * 60),
    "Pendulum-v1": (-200.0, 10_000, None),
    "LunarLander-v3": (200.0, 130_000, None),
}
DEFAULT_ENVS = ["CartPole-v1", "Pendulum-v1"]  # LunarLander: ~1 hour per seed, asked by name


def per_seed(env: str, runs: dict[int, Path]) -> str:
    target, budget, wall = TARGETS[env]
    lines = [
        "| seed | return (100 eps) | real env steps | wall time | host at start (hostspeed.py) "
        "| steps to target (learning curve) | target met |",
        "|---|---|---|---|---|---|---|",
    ]
    for seed, run in runs.items():
        if not (run / "eval.json").exists():
            lines.append(f"| {seed} | (not finished) | | | | | |")
            continue
        r = load_run(run)
        ev = json.loads((run / "eval.json").read_text())
        seconds = r.wall_seconds
        reached = steps_to_threshold(r.curve, target)
        met = ev["mean_return"] >= target and r.real_env_steps <= budget
        if wall is not None:
            met = met and seconds <= wall
        lines.append(
            f"| {seed} | {ev['mean_return']:.1f} ± {ev['std_return']:.1f} | "
            f"{r.real_env_steps:,} | {seconds:.0f} s | {describe(run)} | "
            f"{f'{reached:,}' if reached is not None else 'never'} | {'yes' if met else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", choices=list(TARGETS), help="repeatable")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--lanes", type=int, default=2, help="runs side by side")
    ap.add_argument("--threads", type=int, default=1, help="math threads per run")
    ap.add_argument("--set", action="append", default=[], dest="extra", metavar="KEY=VALUE",
                    help="a probe: --set items on top of the preset (needs --name)")  # fmt: skip
    ap.add_argument("--name", help="the probe's name: its runs and RESULTS.md section")
    args = ap.parse_args()
    if args.extra and not args.name:
        raise UserError("--set makes a probe, not the preset's runs: name it with --name NAME")
    if args.name and not re.fullmatch(r"[A-Za-z0-9._-]+", args.name):
        raise UserError(f"--name {args.name!r}: use letters, digits, '.', '_' or '-'")
    envs = args.env or DEFAULT_ENVS
    name = args.name or (f"threads{args.threads}" if args.threads > 1 else None)
    root = ROOT if name is None else ROOT.parent / f"dreamer_{name}"
    extra = ([] if args.threads == 1 else [f"threads={args.threads}"]) + args.extra
    jobs = [(env, seed) for env in envs for seed in args.seeds]
    with ThreadPoolExecutor(args.lanes) as pool:
        made = list(
            pool.map(
                lambda job: run_one(job[0], "dreamer", job[1], extra, root, args.threads), jobs
            )
        )
    read_from = dict(zip(jobs, made, strict=True))  # the run, or its committed record
    per_run = "one math thread" if args.threads == 1 else f"{args.threads} math threads"
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, CPU only, {per_run} per run, "
        f"{args.lanes} runs side by side"
    )
    title = "" if args.threads == 1 else f", {per_run} per run"
    title += "".join(f", --set {item}" for item in args.extra)
    probe = "".join(f" --set {item}" for item in args.extra) + (
        f" --name {args.name}" if args.name else ""
    )
    for env in envs:
        runs = {s: read_from[(env, s)] for s in args.seeds}
        finished = [p for p in runs.values() if (p / "eval.json").exists()]
        if not finished:
            continue
        table, _ = compare(finished, root / env / "dreamer_compare")
        target, budget, wall = TARGETS[env]
        limit = f", <= {wall // 60} min of wall time per seed" if wall else ""
        seeds = " ".join(str(s) for s in args.seeds)
        section = (
            f"## dreamer on {env}{title}\n\nCommand: `python benchmarks/dreamer_targets.py "
            f"--env {env} --seeds {seeds} --lanes {args.lanes} --threads {args.threads}{probe}`; "
            f"machine: {machine}; "
            f"{date.today().isoformat()}.\nTarget: >= {target:g} with <= {budget:,} real env "
            f"steps{limit}, every seed.\n\n{table}\n\n{per_seed(env, runs)}\n"
        )
        key = f"dreamer:{env}" if name is None else f"dreamer:{env}:{name}"
        write_results(key, section)
        print(section, flush=True)


if __name__ == "__main__":
    run_main(main)
