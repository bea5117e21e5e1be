"""The classic pipeline (random rollouts -> V -> M -> CMA-ES controller) at a small budget on
several envs, one table: episodes collected, final V and M losses, controller score, real env
steps and wall time.

    .venv/bin/python benchmarks/classic_pipeline.py                 # every env below
    .venv/bin/python benchmarks/classic_pipeline.py --env CartPole-v1

Runs live in benchmarks/runs/<env>/ and are resumed, so a killed benchmark continues. CartPole
uses exactly the env preset that `make demo` uses. The pixel envs get budgets far below the
paper's (10,000 rollouts, GPU days): their scores are not expected to be good.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from budgets import LUNAR_CLASSIC_SMALL, pixel_small

from worldmodels import pipeline
from worldmodels.data.store import EpisodeStore

# --set overrides per env: small budgets that finish in minutes on 2 CPU cores
BUDGETS: dict[str, list[str]] = {
    "CartPole-v1": [],
    "LunarLander-v3": LUNAR_CLASSIC_SMALL,
    "CarRacing-v3": pixel_small(200),
    "ALE/Pong-v5": pixel_small(500),
}


SEEDS: dict[str, list[int]] = {"CartPole-v1": [0, 1, 2]}  # others: seed 0 only


def run_env(env_id: str, root: Path, seed: int) -> dict[str, object]:
    run_dir = root / env_id.replace("/", "_") / f"seed{seed}"
    t0 = time.time()
    ctx = pipeline.open_run(
        run_dir, env_id, [], None, BUDGETS[env_id], seed, "cpu", resume=True, progress=False
    )
    try:
        pipeline.train(ctx, "classic", set())
        result = pipeline.evaluate(ctx)
    finally:
        ctx.close()
    vision = ctx.run.load("vision/last")["progress"]["metrics"]
    memory = ctx.run.load("memory/last")["progress"]["metrics"]
    return {
        "env": env_id,
        "seed": seed,
        "episodes": EpisodeStore(ctx.run.episodes).summary()["episodes"],
        "random": EpisodeStore(ctx.run.episodes).summary()["mean_return"],
        "vae_loss": vision.get("val_loss", vision["loss"]),
        "mdn_loss": memory.get("val_loss", memory["loss"]),
        "score": f"{result['mean_return']:.1f} ± {result['std_return']:.1f} "
        f"({result['episodes']} ep)",
        "steps": result["real_env_steps"],
        "train_wall": result["wall_seconds"],
        "this_call": time.time() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", action="append", choices=list(BUDGETS), help="repeatable")
    ap.add_argument("--root", type=Path, default=Path(__file__).parent / "runs" / "classic")
    ap.add_argument(
        "--seed",
        type=int,
        action="append",
        help="repeatable (default: 0, 1, 2 for CartPole-v1 and 0 elsewhere)",
    )
    args = ap.parse_args()
    rows = [
        run_env(env_id, args.root, seed)
        for env_id in args.env or list(BUDGETS)
        for seed in (args.seed or SEEDS.get(env_id, [0]))
    ]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, CPU only")
    print(
        "| env | seed | episodes collected | V val loss | M val loss | random policy "
        "(collected episodes) | controller score (real env) | real env steps | "
        "training wall time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['env']} | {r['seed']} | {r['episodes']} | {r['vae_loss']:.4g} | "
            f"{r['mdn_loss']:.4g} | {r['random']:.1f} | "
            f"{r['score']} | {r['steps']:,} | {r['train_wall']:.0f} s |"
        )


if __name__ == "__main__":
    main()
