"""The validation suite: the dreamer's one learning configuration on Gymnasium envs it was never
tuned on, against PPO at the same real-step budget -- per env the interquartile mean over seeds
with its 95% bootstrap interval and the real env steps to the env's reward threshold, then over
all envs the IQM of PPO-normalised scores (the random policy 0, PPO 1) with rliable's
stratified-bootstrap interval, how many envs the dreamer's IQM is at or above PPO's, and a
performance profile.

    .venv/bin/python benchmarks/validation.py                       # the vector envs, seeds 0-4
    .venv/bin/python benchmarks/validation.py --env Hopper-v5 --env Reacher-v5 --seeds 0 1
    .venv/bin/python benchmarks/validation.py --env ALE/Pong-v5 --lanes 1    # hours per seed
    .venv/bin/python benchmarks/validation.py --env ALE/Breakout-v5 --seeds 0 1 2 --lanes 1

Each env's budget is stated in ENVS below. None of them has an entry in dreamer.yaml's envs:,
so the dreamer runs as `worldmodels train --env E --method dreamer --seed S` with no `--set`
item: its one learning configuration (defaults:) at the sizes and budget of the env's
observation kind (sized:; the script stops if that budget is not the one stated here): vector
envs 10,000 real env steps at the CPU size, pixels (Pong, Breakout) 100,000 at 32x32 frames:
the Atari-100k protocol (an agent step of 4 frames counts as one, as in SB3, rl-zoo and the
Atari-100k papers, so 400,000 frames; sticky actions 0.25, full games of up to 108,000 frames,
the max of each step's last two frames: worldmodels.envs), Atari scores also
human-normalised (tables.ATARI_REFERENCE). PPO gets
the same real env steps (`--set ppo.total_steps=<budget>`) and otherwise the ppo method's
settings: ppo.yaml's entry for the env where it has one -- rl-zoo's tuned PPO
(hyperparams/ppo.yml; the MuJoCo tasks' under older version ids), which for every env here but
the Atari games normalises observations and rewards (rl-zoo's `normalize: true`), and for
those rl-zoo's atari settings -- else SB3's defaults. Where the env count so resolved fills no
rollout within the budget (the ppo section's default of 8 envs x 2,048 steps; rl-zoo's 32 x 2,048 on
BipedalWalker-v3), PPO runs with one env (`ppo.n_envs=1`, SB3's and rl-zoo's default count),
else it would never update and be scored untrained. Every env in ENVS has an entry today.
Updates within the budget (`ppo_updates`; a rollout is n_envs x n_steps): Acrobot-v1 16 x 256
= 4,096: 2; MountainCarContinuous-v0 1 x 8: 1,249; BipedalWalker-v3 1 x 2,048: 4;
InvertedPendulum-v5 1 x 32: 312; InvertedDoublePendulum-v5 1 x 128: 78; Reacher-v5 and
Hopper-v5 1 x 512: 19; ALE/Pong-v5 and ALE/Breakout-v5 8 x 128 = 1,024 in 100,000 steps: 97.

Runs go to benchmarks/runs/validation/<env>/<method>_s<seed> (an env id's "/" becomes "_"), one
math thread each, `--lanes` of them side by side; a finished run is read back, an interrupted
one continued (suite.run_one). Each finished run is kept as a record in
benchmarks/results/<env>/<method>_s<seed>.json.gz (records.py), then tables.py rewrites the
docs' tables. The tuning seeds are 100-104; the reported ones 0-4.

The random policy's score per env is measured here, once: 100 episodes of uniformly random
actions (NumPy generator seeded 0) on the evaluation stream's reset seeds of run seed 0
(``worldmodels.seeding``), on the env as the runs get it (the env's own frame skip and step
limit; a probe's `env.*` items included), kept in benchmarks/results/random_policy.json.gz.

A probe -- both methods with the same `--set` items on top of their budgets -- is named: its
runs go to benchmarks/runs/validation_<name>/, its records into
benchmarks/probes/validation.<env>.<name>.json.gz, and nothing goes to the docs:

    .venv/bin/python benchmarks/validation.py --env Acrobot-v1 --seeds 100 101 \
        --set dreamer.train_ratio=512 --name ratio512

The performance profile is written to `--figure PATH` (default: performance_profile.png in the
runs' folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import records
import tables
from suite import ROOT, machine, regenerate, run_one

from worldmodels.config import Config, EnvConfig, apply_overrides
from worldmodels.config.merge import parse_set
from worldmodels.config.presets import method_preset, method_sized
from worldmodels.data.rollout import EnvPool, RandomPolicy, run_batch
from worldmodels.envs import probe
from worldmodels.errors import UserError, run_main
from worldmodels.evaluation.compare import (
    steps_to_threshold,
)
from worldmodels.runs import versions
from worldmodels.seeding import Stream, reset_seeds

matplotlib.use("Agg")

RUNS = ROOT.with_name("validation")
RANDOM_SCORES = tables.RANDOM_SCORES
RANDOM_EPISODES = 100
RANDOM_SEED = 0  # the run seed whose evaluation stream the random policy's episodes use
METHODS = ["ppo", "dreamer"]  # the baseline first
SEEDS = [0, 1, 2, 3, 4]  # the tuning seeds are 100-104


@dataclass(frozen=True)
class ValidationEnv:
    family: str
    kind: str  # the observation kind, whose dreamer.yaml sized: entry sizes the dreamer
    budget: int  # real env steps per run, for both methods
    note: str = ""


ENVS: dict[str, ValidationEnv] = {
    "Acrobot-v1": ValidationEnv("classic control", "vector", 10_000),
    "MountainCarContinuous-v0": ValidationEnv("classic control", "vector", 10_000),
    "BipedalWalker-v3": ValidationEnv("Box2D", "vector", 10_000),
    "InvertedPendulum-v5": ValidationEnv("MuJoCo", "vector", 10_000),
    "InvertedDoublePendulum-v5": ValidationEnv("MuJoCo", "vector", 10_000),
    "Reacher-v5": ValidationEnv("MuJoCo", "vector", 10_000),
    "Hopper-v5": ValidationEnv("MuJoCo", "vector", 10_000),
    "ALE/Pong-v5": ValidationEnv(
        "Atari", "pixels", 100_000, "slow: hours per seed on 2 CPU cores; run only when named"
    ),
    "ALE/Breakout-v5": ValidationEnv(
        "Atari", "pixels", 100_000, "slow: hours per seed on 2 CPU cores; run only when named"
    ),
}
DEFAULT_ENVS = [env for env, v in ENVS.items() if v.kind == "vector"]
PPO_ONE_ENV = "ppo.n_envs=1"  # SB3's own env count: rollouts of 2,048 steps fit the budget


# ---------------------------------------------------------------------------------- settings
def check_untuned(env: str) -> None:
    """The env has no dreamer entry of its own, and its observation kind's budget is the one
    ENVS states (UserError otherwise)."""
    spec = ENVS[env]
    if method_preset(env, "dreamer"):
        raise UserError(f"{env} has its own entry in dreamer.yaml: it is not a validation env")
    sized = method_sized("dreamer", spec.kind).get("dreamer", {}).get("total_steps")
    if sized != spec.budget:
        raise UserError(
            f"dreamer.yaml's sized: {spec.kind} budget is {sized} real env steps, ENVS states "
            f"{spec.budget:,} for {env}: update ENVS in benchmarks/validation.py"
        )


def method_settings(env: str, method: str) -> list[str]:
    """The `--set` items of a run: PPO's budget, and one env where the env count it resolves
    to (ppo.yaml's entry, or the ppo section's default of 8) fills no rollout within the budget;
    none for the dreamer, whose budget is its sized: entry's."""
    if method != "ppo":
        return []
    budget = ENVS[env].budget
    items = [f"ppo.total_steps={budget}"]
    ppo = records.expected_config(env, "ppo", 0, items, 1)["ppo"]
    return items + (
        [PPO_ONE_ENV] if ppo_updates(budget, ppo["n_envs"], ppo["n_steps"]) == 0 else []
    )


def ppo_updates(budget: int, n_envs: int, n_steps: int) -> int:
    """PPO's updates within ``budget`` real env steps: one per full rollout of ``n_envs`` x
    ``n_steps`` steps that ends before the budget (training stops at the budget's step, before
    the update of the rollout in progress, also when that step ends the rollout)."""
    return (budget - 1) // (n_envs * n_steps)


def ppo_text(env: str, extra: list[str]) -> str:
    """PPO's settings on ``env`` in words, with its updates within the budget."""
    ppo = records.expected_config(env, "ppo", 0, extra, 1)["ppo"]
    source = (
        "rl-zoo's settings (ppo.yaml's entry)" if method_preset(env, "ppo") else "SB3's defaults"
    )
    if PPO_ONE_ENV in extra:
        source += " with one env (its own env count fills no rollout within the budget)"
    n = ppo_updates(ppo["total_steps"], ppo["n_envs"], ppo["n_steps"])
    return (
        f"PPO: {source}; {ppo['n_envs']} env(s) x {ppo['n_steps']:,} steps a rollout, "
        f"{n} update(s) in {ppo['total_steps']:,} real env steps"
    )


# ---------------------------------------------------------------------------------- random policy
def env_config(env: str, sets: list[str]) -> EnvConfig:
    """The env as the runs get it: its own settings with the `env.*` items of ``sets``."""
    cfg = Config()
    apply_overrides(cfg, parse_set([s for s in sets if s.startswith("env.")]))
    cfg.env.id = env
    return cfg.env


def measure_random(env: str, env_items: list[str], episodes: int = RANDOM_EPISODES) -> dict:
    """The random policy's returns on ``episodes`` evaluation-stream episodes of run seed
    RANDOM_SEED, actions drawn uniformly by a generator seeded RANDOM_SEED."""
    cfg = env_config(env, env_items)
    spec = probe(cfg)
    seeds = reset_seeds(RANDOM_SEED, Stream.EVALUATE, 0, episodes)
    policy = RandomPolicy(spec, np.random.default_rng(RANDOM_SEED))
    pool, returns = EnvPool(cfg), []
    try:
        for b in range(0, episodes, 25):
            returns += run_batch(pool, spec, policy, seeds[b : b + 25]).returns.tolist()
    finally:
        pool.close()
    return {
        "env": env,
        "env_settings": env_items,
        "episodes": episodes,
        "run_seed": RANDOM_SEED,
        "seeds": seeds,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "returns": [float(r) for r in returns],
        "date": date.today().isoformat(),
        "versions": versions(),
    }


def random_scores(envs: list[str], sets: list[str], path: Path = RANDOM_SCORES) -> dict:
    """Per env the random policy's measurement, read from ``path`` or measured now (and kept
    there)."""
    env_items = [s for s in sets if s.startswith("env.")]
    kept = records.read(path)["envs"] if path.exists() else []

    def key(entry: dict[str, Any]) -> tuple[str, list[str], int]:
        return entry["env"], entry["env_settings"], entry["episodes"]

    out = {}
    for env in envs:
        entry = next((e for e in kept if key(e) == (env, env_items, RANDOM_EPISODES)), None)
        if entry is None:
            print(f"  {env}: the random policy over {RANDOM_EPISODES} episodes ...", flush=True)
            entry = measure_random(env, env_items)
            kept = sorted([*kept, entry], key=lambda e: (e["env"], e["env_settings"]))
            records.write(path, {"what": "the random policy's score per env (validation.py)",
                                 "envs": kept})  # fmt: skip
        out[env] = entry
    return out


# ---------------------------------------------------------------------------------- tables
def runs_of(recs: list[dict[str, Any]]) -> list[tables.Run]:
    """The records as tables' runs, ordered by method (PPO first) and seed, with the steps to
    the env's own reward threshold (tables.py knows thresholds of its envs only)."""
    out = []

    def order(rec: dict[str, Any]) -> tuple[int, str, int]:
        method = rec["method"]
        return (METHODS.index(method) if method in METHODS else len(METHODS), method, rec["seed"])

    for rec in sorted(recs, key=order):
        run = tables.to_run(rec)
        threshold = rec.get("env_spec", {}).get("reward_threshold")
        if run.curve is not None:
            to = steps_to_threshold(run.curve, threshold)
            run = dataclasses.replace(run, steps_to_threshold=to)
        out.append(run)
    return out


def env_report(env: str, recs: list[dict[str, Any]], random: dict, head: str) -> str:
    threshold = next((r["env_spec"].get("reward_threshold") for r in recs), None)
    spec = ENVS[env]
    line = (
        f"### {env} ({spec.family}, {spec.kind}; a budget of {spec.budget:,} real env steps per run"
        + (f"; {spec.note}" if spec.note else "")
        + ")\n\n"
        + f"Threshold: {'none' if threshold is None else f'{threshold:g}'} (gymnasium's "
        f"reward_threshold). Random policy: {random['mean_return']:.1f} ± "
        f"{random['std_return']:.1f} over {random['episodes']} episodes.\n\n{head}\n"
    )
    rows = tables.rows_of(runs_of(recs))[env]
    ppo = next((r.median_steps for r in rows if r.method == "ppo"), None)
    seeds = [f"{row.method}, per seed:\n\n{tables.seed_table(row, ppo)}" for row in rows]
    human = [tables.human_normalised(rows)] if env in tables.ATARI_REFERENCE else []
    return "\n".join([line, tables.env_table(rows), *human, *seeds])


def aggregate_report(recs: list[dict[str, Any]], randoms: dict, figure: Path, head: str) -> str:
    """The suite's aggregate over ``recs``' envs (as the docs' results page gives it), with the
    performance profile drawn at ``figure``."""
    rows = tables.rows_of(runs_of(recs))
    random = {env: randoms[env]["mean_return"] for env in rows}
    tables.draw_profile(rows, random, figure)
    return f"{head}\n\n{tables.validation_table(rows, random, str(figure))}"


# ---------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--env", action="append", choices=list(ENVS), help="repeatable (default: the vector envs)"
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    ap.add_argument("--lanes", type=int, default=2, help="runs side by side, one math thread each")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="KEY=VALUE",
        help="a probe: --set items on top of both methods' budgets (needs --name)",
    )
    ap.add_argument("--name", help="the probe's name: its runs and its probe files")
    ap.add_argument("--figure", type=Path, help="the performance profile's PNG")
    args = ap.parse_args()
    if bool(args.sets) != bool(args.name):
        raise UserError("--set and --name go together: a probe is named, and has --set items")
    if args.name and not re.fullmatch(r"[A-Za-z0-9._-]+", args.name):
        raise UserError(f"--name {args.name!r}: use letters, digits, '.', '_' or '-'")
    envs = args.env or DEFAULT_ENVS
    methods = [m for m in METHODS if m in args.methods]
    for env in envs:
        check_untuned(env)
    root = RUNS if args.name is None else RUNS.with_name(f"validation_{args.name}")
    figure = args.figure or root / "performance_profile.png"
    probe_items = "".join(f" --set {s}" for s in args.sets)
    probe_items += f" --name {args.name}" if args.name else ""
    seeds = " ".join(map(str, args.seeds))
    run_args = f"--seeds {seeds} --methods {' '.join(methods)} --lanes {args.lanes}{probe_items}"
    today, host = date.today().isoformat(), machine(1, args.lanes)

    def meta(env: str) -> dict[str, Any]:
        command = f"python benchmarks/validation.py --env {env} {run_args}"
        return {"command": command, "date": today, "machine": host}

    def probe_name(env: str) -> str:
        return f"validation.{env.replace('/', '_')}.{args.name}"

    randoms = random_scores(envs, args.sets)

    def one(job: tuple[str, str, int]) -> tuple[dict[str, Any] | None, bool]:
        env, method, seed = job
        stored = (records.probe_run(probe_name(env), method, seed, env) if args.name else
                  records.stored(records.result_path(env, method, seed)))  # fmt: skip
        extra = method_settings(env, method) + args.sets
        return run_one(env, method, seed, extra, root, 1, stored, meta(env))

    jobs = [(env, method, seed) for env in envs for seed in args.seeds for method in methods]
    with ThreadPoolExecutor(args.lanes) as pool:
        made = dict(zip(jobs, pool.map(one, jobs), strict=True))
    done: list[dict[str, Any]] = []
    for env in envs:
        recs = [rec for (e, _, _), (rec, _) in made.items() if e == env and rec is not None]
        if not recs:
            continue
        head = f"`{meta(env)['command']}` ({today}; {host})."
        if "ppo" in methods:
            head += f" {ppo_text(env, method_settings(env, 'ppo') + args.sets)}."
        if args.name:
            title = f"validation: {env}{probe_items}"
            path = records.save_probe(
                probe_name(env), recs, title=title, settings=args.sets, **meta(env)
            )
            head += f" Records: {path.resolve().relative_to(tables.ROOT)}."
        else:
            for (e, _, _), (rec, new) in made.items():
                if e == env and rec is not None and new:
                    records.save_result(rec)
        print(env_report(env, recs, randoms[env], head), flush=True)
        done += recs
    if done:
        everything = f"`python benchmarks/validation.py {' '.join(f'--env {e}' for e in envs)} "
        head = f"{everything}{run_args}` ({today}; {host})."
        print(aggregate_report(done, randoms, figure, head), flush=True)
    if args.name is None:
        regenerate()


if __name__ == "__main__":
    run_main(main)
