"""Every method on the same envs and seeds, one comparison: what each costs (real env steps,
wall time) and what it reaches, and -- from the learning curves -- the real env steps each
needed to reach the env's solved threshold, as a ratio to PPO's.

    .venv/bin/python benchmarks/suite.py                                  # every env below
    .venv/bin/python benchmarks/suite.py --env CartPole-v1 --methods ppo mpc --seeds 0

Each run is `worldmodels train --env E --method M --seed S` with the env's (and method's)
presets plus the budget overrides below, in benchmarks/runs/suite/<env>/<method>_s<seed>/ (not
committed). A finished run (eval.json) is read back, an interrupted one continues with
--resume, so a killed suite picks up where it stopped. Each start of a run first measures the
host's speed into its host_speed.json (hostspeed.py). Runs go one after another with one math
thread each. Every finished run is kept as a one-file record (records.py) in
benchmarks/results/<env>/<method>_s<seed>.json.gz, and a record stands in for its run -- lost
with its machine -- while its config is today's. Then tables.py rewrites docs/results.md, the
figure and the README's results table from benchmarks/results/.

A variant -- every method with the same `--set` items on top of its budget -- is a probe: its
runs go to benchmarks/runs/suite_<name>/ and its records into one file,
benchmarks/probes/suite.<env>.<name>.json.gz; its table is printed, not put in the docs:

    .venv/bin/python benchmarks/suite.py --env CarRacing-v3 --seeds 0 --methods ppo dreamer \
        --set env.discrete_actions=true --name discrete
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import statistics
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import records
import tables
from budgets import LUNAR_CLASSIC_SMALL, train_command
from hostspeed import stamp

from worldmodels.registry import REGISTRY

HERE = Path(__file__).parent
ROOT = HERE / "runs" / "suite"
METHODS = ["ppo", *(m for m in REGISTRY if m != "ppo")]  # the baseline first
SEEDS = [0, 1, 2]
TARGET_RATIO = 0.2  # the best world-model method needs <= 1/5 of PPO's real env steps

# per env: the methods run and their budget overrides (on top of the env/method presets).
# The pixel envs get budgets far below what they need (GPU-days in the papers).
SUITE: dict[str, dict[str, list[str]]] = {
    "CartPole-v1": {m: [] for m in METHODS},
    "LunarLander-v3": {
        "ppo": [],
        "classic": LUNAR_CLASSIC_SMALL,
        "wm-ppo": [],
        "dream": ["collect.episodes=200", "vision.epochs=10", "memory.epochs=10"],
        "a2c": [],
        "mpc": [],
        "dreamer": [],
    },
    # full episodes (1,000 frames), every method at 100,000 real env steps
    # (classic: 16 collected episodes + 5 generations x 16 + a 4-episode evaluation)
    "CarRacing-v3": {
        "ppo": ["ppo.total_steps=100000", "evaluate.episodes=10"],
        "classic": [
            "collect.episodes=16",
            "vision.epochs=5",
            "memory.epochs=10",
            "controller.population=16",
            "controller.rollouts=1",
            "controller.generations=5",
            "controller.eval_every=5",
            "controller.eval_episodes=4",
            "evaluate.episodes=10",
        ],
        "dreamer": ["evaluate.episodes=10"],
    },
}


def machine(threads: int = 1, lanes: int | None = None) -> str:
    per_run = "one math thread" if threads == 1 else f"{threads} math threads"
    side = f", {lanes} runs side by side" if lanes and lanes > 1 else ""
    side = ", one run at a time" if lanes == 1 else side
    return f"{platform.machine()}, {os.cpu_count()} cores, CPU only, {per_run} per run{side}"


def run_one(
    env: str,
    method: str,
    seed: int,
    extra: list[str],
    root: Path = ROOT,
    threads: int = 1,
    stored: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, bool]:
    """One run; returns its record and whether it is new: the run's when it finished under
    ``root`` (new), else ``stored`` when that record was made with today's config (not new),
    else the run made (or continued) now (new; None when it failed). ``meta`` (command,
    machine, date, settings) goes into a new record."""
    run_dir = root / env.replace("/", "_") / f"{method}_s{seed}"
    meta = {**(meta or {}), "settings": extra}
    if (run_dir / "eval.json").exists():
        return records.from_run(run_dir, **meta), True
    if not run_dir.exists() and records.is_current(stored, env, method, seed, extra, threads):
        print(f"  {env} {method} seed {seed}: read from its record", flush=True)
        return stored, False
    cmd = train_command(run_dir, env, method, seed, extra, sets_on_resume=False)
    print(f"  {env} {method} seed {seed} ...", flush=True)
    stamp(run_dir)  # how fast the host is as it starts: wall times of other days compare
    done = subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, capture_output=True, text=True
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"  {env} {method} seed {seed} failed: {tail}", flush=True)
    return records.from_run(run_dir, **meta), True


def verdict(by_method: dict[str, list[tuple[int, int | None]]], ppo: float | None) -> str:
    """The target, judged two ways: the best world-model method by its median over all seeds
    (a seed that never reached the threshold counts as never), and its best seed."""
    if ppo is None:
        return (
            f"Target (best world-model method ≤ {TARGET_RATIO} × PPO's steps): no PPO run "
            "reached the threshold, so there is no ratio."
        )
    medians, best_seed = {}, None
    for method, values in by_method.items():
        if method == "ppo":
            continue
        medians[method] = statistics.median(math.inf if v is None else v for _, v in values)
        for seed, v in values:
            if v is not None and (best_seed is None or v < best_seed[2]):
                best_seed = (method, seed, v)
    if not medians:
        return "No world-model method has finished runs."
    method = min(medians, key=lambda m: medians[m])
    if math.isinf(medians[method]):
        line = "by the median over seeds no world-model method reached the threshold"
    else:
        r = medians[method] / ppo
        met = "met" if r <= TARGET_RATIO else "missed"
        line = (
            f"by the median over seeds the best world-model method is {method}: {r:.3f} × "
            f"PPO's median ({met})"
        )
    if best_seed is None:
        return f"Target (≤ {TARGET_RATIO} × PPO's steps): {line}; no seed of any did."
    m, seed, v = best_seed
    return (
        f"Target (≤ {TARGET_RATIO} × PPO's steps): {line}. Best single seed: {m} seed {seed}, "
        f"{v / ppo:.3f} × ({'met' if v / ppo <= TARGET_RATIO else 'missed'})."
    )


def report(recs: list[dict[str, Any]]) -> str:
    """The env's table of these records, each method's seeds, and the target's verdict."""
    runs = [tables.to_run(r) for r in recs]
    out = []
    for env, env_rows in tables.rows_of(runs).items():
        ppo = next((r for r in env_rows if r.method == "ppo"), None)
        by_method = {row.method: [(r.seed, r.steps_to_threshold) for r in row.runs]
                     for row in env_rows}  # fmt: skip
        out += [f"{env}:\n", tables.env_table(env_rows)]
        out += [tables.method_section(row, ppo.median_steps if ppo else None) for row in env_rows]
        out.append(verdict(by_method, ppo.median_steps if ppo else None) + "\n")
    return "\n".join(out)


def regenerate() -> None:
    """docs/results.md, the figure and the README's table from benchmarks/results/."""
    tables.main([])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", action="append", choices=list(SUITE), help="repeatable")
    ap.add_argument("--methods", nargs="+", choices=METHODS)
    ap.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a variant: --set items on top of every method's budget (needs --name)",
    )
    ap.add_argument("--name", help="the variant's name: its runs and its probe file")
    args = ap.parse_args()
    if bool(args.sets) != bool(args.name) or (
        args.name and not re.fullmatch(r"[\w.-]+", args.name)
    ):
        ap.error("--set and --name go together; a name is letters, digits, '.', '_' or '-'")
    root = ROOT if not args.name else ROOT.with_name(f"suite_{args.name}")
    for env in args.env or list(SUITE):
        methods = [m for m in SUITE[env] if not args.methods or m in args.methods]
        command = f"python benchmarks/suite.py --env {env} --seeds {' '.join(map(str, args.seeds))}"
        if args.methods:
            command += f" --methods {' '.join(methods)}"
        if args.name:
            command += "".join(f" --set {item}" for item in args.sets) + f" --name {args.name}"
        meta = {"command": command, "date": date.today().isoformat(), "machine": machine()}
        probe = f"suite.{env}.{args.name}" if args.name else None
        made = []
        for method in methods:
            for seed in args.seeds:
                stored = (records.probe_run(probe, method, seed, env) if probe else
                          records.stored(records.result_path(env, method, seed)))  # fmt: skip
                extra = SUITE[env][method] + args.sets
                rec, new = run_one(env, method, seed, extra, root, 1, stored, meta)
                if rec is not None:
                    made.append(rec)
                    if new and not probe:
                        records.save_result(rec)
        if not made:
            continue
        if probe:
            records.save_probe(probe, made, title=f"{env} ({args.name})",
                               settings=args.sets, **meta)  # fmt: skip
            print(f"{records.probe_path(probe)}\n\n{report(made)}", flush=True)
        else:
            print(report(made), flush=True)
    if not args.name:
        regenerate()


if __name__ == "__main__":
    main()
