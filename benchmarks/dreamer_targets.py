"""The targets of `--method dreamer`: per env, 5 seeds of the env's dreamer preset, 100
evaluation episodes each, the interquartile mean with its bootstrap interval beside the mean,
and per seed the score, real env steps, wall time and the real env steps at which the learning
curve first reached the target.

    .venv/bin/python benchmarks/dreamer_targets.py                      # CartPole, Pendulum
    .venv/bin/python benchmarks/dreamer_targets.py --env Pendulum-v1 --seeds 0 1 --lanes 1
    .venv/bin/python benchmarks/dreamer_targets.py --env LunarLander-v3 --seeds 0 1

The runs are the suite's (benchmarks/runs/suite/<env>/dreamer_s<seed>, so `suite.py` reads
them back); `--lanes` runs go side by side, one math thread each (two runs sharing the 2 cores
is how the published wall times were measured). Each finished run is kept as a one-file record
in benchmarks/results/<env>/dreamer_s<seed>.json.gz (records.py), read back in place of a lost
run while the preset still resolves to its config, so `--seeds 0 1 2 3 4` runs only the seeds
that have neither; then tables.py rewrites the docs' tables from benchmarks/results/.

A probe -- the preset with `--set` items on top -- is named: its runs go to
benchmarks/runs/dreamer_<name>, its records into benchmarks/probes/dreamer.<env>.<name>.json.gz,
and its table is printed, not put in the docs. `--threads N` (N > 1) gives each run N math
threads instead, recorded in its config.yaml, as the probe `threads<N>` (the thread count
changes the float rounding, so these are other runs, not the same runs faster):

    .venv/bin/python benchmarks/dreamer_targets.py --env LunarLander-v3 --seeds 0 1 \
        --set dreamer.actor_grad_mix=0.5 --name actor-grad-mix
    .venv/bin/python benchmarks/dreamer_targets.py --env CartPole-v1 --lanes 1 --threads 2
"""

from __future__ import annotations

import argparse
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import records
import tables
from suite import ROOT, machine, regenerate, run_one

from worldmodels.errors import UserError, run_main

# env -> (target score, real env step budget, wall-time budget per seed in s or None)
TARGETS = {
    "CartPole-v1": (475.0, 10_000, 15 * 60),
    "Pendulum-v1": (-200.0, 10_000, None),
    "LunarLander-v3": (200.0, 130_000, None),
}
DEFAULT_ENVS = ["CartPole-v1", "Pendulum-v1"]  # LunarLander: ~1 hour per seed, asked by name


def per_seed(env: str, recs: list[dict[str, Any]]) -> str:
    """Each seed's score, cost, steps to the target and whether it met the target."""
    target, budget, wall = TARGETS[env]
    lines = [
        "| seed | return (mean ± std) | real env steps | wall time | host at start "
        "(hostspeed.py) | steps to target (learning curve) | target met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in (tables.to_run(rec) for rec in recs):
        met = r.mean_return >= target and (r.real_env_steps or 0) <= budget
        if wall is not None:
            met = met and (r.wall_seconds or 0) <= wall
        to = "never" if r.steps_to_threshold is None else f"{r.steps_to_threshold:,}"
        lines.append(
            f"| {r.seed} | {r.mean_return:.1f} ± {r.std_return or 0:.1f} | "
            f"{tables.fmt_steps(r.real_env_steps)} | {tables.fmt_seconds(r.wall_seconds)} | "
            f"{tables.host_text(r)} | {to} | {'yes' if met else 'no'} |"
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
    ap.add_argument("--name", help="the probe's name: its runs and its probe file")
    args = ap.parse_args()
    if args.extra and not args.name:
        raise UserError("--set makes a probe, not the preset's runs: name it with --name NAME")
    if args.name and not re.fullmatch(r"[A-Za-z0-9._-]+", args.name):
        raise UserError(f"--name {args.name!r}: use letters, digits, '.', '_' or '-'")
    envs = args.env or DEFAULT_ENVS
    name = args.name or (f"threads{args.threads}" if args.threads > 1 else None)
    root = ROOT if name is None else ROOT.parent / f"dreamer_{name}"
    extra = ([] if args.threads == 1 else [f"threads={args.threads}"]) + args.extra
    probe = "".join(f" --set {item}" for item in args.extra) + (
        f" --name {args.name}" if args.name else ""
    )
    seeds = " ".join(str(s) for s in args.seeds)

    def meta(env: str) -> dict[str, Any]:
        return {
            "command": f"python benchmarks/dreamer_targets.py --env {env} --seeds {seeds} "
            f"--lanes {args.lanes} --threads {args.threads}{probe}",
            "date": date.today().isoformat(),
            "machine": machine(args.threads, args.lanes),
        }

    def one(job: tuple[str, int]) -> tuple[dict[str, Any] | None, bool]:
        env, seed = job
        stored = (records.probe_run(f"dreamer.{env}.{name}", "dreamer", seed, env) if name else
                  records.stored(records.result_path(env, "dreamer", seed)))  # fmt: skip
        return run_one(env, "dreamer", seed, extra, root, args.threads, stored, meta(env))

    jobs = [(env, seed) for env in envs for seed in args.seeds]
    with ThreadPoolExecutor(args.lanes) as pool:
        made = dict(zip(jobs, pool.map(one, jobs), strict=True))
    for env in envs:
        recs = [rec for (e, _), (rec, _) in made.items() if e == env and rec is not None]
        if not recs:
            continue
        target, budget, wall = TARGETS[env]
        limit = f", <= {wall // 60} min of wall time per seed" if wall else ""
        head = f"dreamer on {env}: target >= {target:g} with <= {budget:,} real env steps{limit}"
        if name:
            path = records.save_probe(
                f"dreamer.{env}.{name}", recs, title=head + probe, settings=extra, **meta(env)
            )
            head += f" ({path})"
        else:
            for (e, _), (rec, new) in made.items():
                if e == env and rec is not None and new:
                    records.save_result(rec)
        rows = tables.rows_of([tables.to_run(r) for r in recs])[env]
        print(f"{head}\n\n{tables.env_table(rows)}\n{per_seed(env, recs)}\n", flush=True)
    if name is None:
        regenerate()


if __name__ == "__main__":
    run_main(main)
