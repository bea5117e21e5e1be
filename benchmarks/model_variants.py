"""Seed 000's models against the classic ones on the same data: VQ-VAE vs ConvVAE (held-out
reconstruction error, M's open-loop error in pixels and the CMA-ES controller's real score at
the same budget) and the temporal transformer vs the MDN-RNN (`diagnose` on one V's latents).

    .venv/bin/python benchmarks/model_variants.py                   # both parts
    .venv/bin/python benchmarks/model_variants.py --part memory --env CartPole-v1

vision: CarRacing-v3 with classic_pipeline.py's small budget (20 random episodes capped at
200 steps, V 5 epochs, M 10 epochs, CMA-ES population 16 x 10 generations, 10 evaluation
episodes), once with vision.kind=conv_vae and once with vq_vae; the second run gets a copy of
the first's episodes, so both see the same frames.
memory: per env, the MDN-RNN run (for CarRacing the conv_vae run above) and a transformer run
that gets copies of its episodes and its V checkpoint, so both M are trained and diagnosed on
the same latents. Every run directory resumes; finished ones are read back.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from pathlib import Path

from worldmodels import pipeline

sys.path.insert(0, str(Path(__file__).parent))
from classic_pipeline import BUDGETS

ROOT = Path(__file__).parent / "runs" / "variants"
HORIZON = 10
MEMORY_BUDGETS: dict[str, list[str]] = {
    "CarRacing-v3": BUDGETS["CarRacing-v3"],
    "CartPole-v1": ["memory.epochs=20"],
}
TRANSFORMER = ["memory.kind=transformer", "memory.attn_layers=2", "memory.attn_heads=4"]


def open_ctx(run_dir: Path, env: str, sets: list[str]) -> pipeline.Context:
    return pipeline.open_run(run_dir, env, [], None, sets, 0, "cpu", resume=True, progress=False)


def seed_from(src: Path, dst: Path, with_vision: bool) -> None:
    """Give a new run the episodes (and V) of another, so both train on the same data."""
    if (dst / "data").exists() or not src.exists():
        return
    shutil.copytree(src / "data" / "episodes", dst / "data" / "episodes")
    if with_vision:
        shutil.copytree(src / "checkpoints" / "vision", dst / "checkpoints" / "vision")


def train_and_diagnose(ctx: pipeline.Context, method_stages: list[str]) -> dict:
    for name in method_stages:
        pipeline.STAGES[name](ctx)
    return pipeline.diagnose(ctx, HORIZON, 2000)


def vision_part() -> list[dict]:
    env = "CarRacing-v3"
    rows = []
    first = ROOT / env / "conv_vae_s0"
    for kind in ("conv_vae", "vq_vae"):
        run_dir = ROOT / env / f"{kind}_s0"
        run_dir.mkdir(parents=True, exist_ok=True)
        if kind != "conv_vae":
            seed_from(first, run_dir, with_vision=False)
        ctx = open_ctx(run_dir, env, [*BUDGETS[env], f"vision.kind={kind}"])
        try:
            diag = train_and_diagnose(ctx, list(pipeline.STAGES))
            result = pipeline.evaluate(ctx)
        finally:
            ctx.close()
        vision = ctx.run.load("vision/last")["progress"]
        rows.append(
            {
                "kind": kind,
                "recon": diag["reconstruction_mse"],
                "obs1": diag["obs_mse"]["model"][0],
                "obsH": diag["obs_mse"]["model"][-1],
                "ratioH": diag["obs_mse_ratio"]["repeat_last"][-1],
                "score": f"{result['mean_return']:.1f} ± {result['std_return']:.1f}",
                "steps": result["real_env_steps"],
                "wall": result["wall_seconds"],
                "perplexity": vision["metrics"].get("perplexity"),
            }
        )
    return rows


def memory_part(env: str) -> list[dict]:
    rows = []
    base = ROOT / env / ("conv_vae_s0" if env == "CarRacing-v3" else "mdn_rnn_s0")
    stages = ["collect", "vision", "memory"]
    for kind, run_dir in [("mdn_rnn", base), ("transformer", ROOT / env / "transformer_s0")]:
        sets = list(MEMORY_BUDGETS[env]) + (TRANSFORMER if kind == "transformer" else [])
        if kind == "transformer":
            run_dir.mkdir(parents=True, exist_ok=True)
            seed_from(base, run_dir, with_vision=True)
        ctx = open_ctx(run_dir, env, sets)
        try:
            diag = train_and_diagnose(ctx, stages)
        finally:
            ctx.close()
        rows.append(
            {
                "kind": kind,
                "lat": diag["latent_mse"]["model"],
                "ratio": diag["latent_mse_ratio"]["repeat_last"],
                "reward": diag["reward_mae"],
                "done": diag["done_accuracy"],
                "starts": diag["starts"],
                "params": sum(
                    v.numel() for v in ctx.run.load("memory/best")["model"]["state_dict"].values()
                ),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["vision", "memory", "all"], default="all")
    ap.add_argument("--env", action="append", choices=list(MEMORY_BUDGETS))
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, CPU only")
    if args.part in ("vision", "all"):
        rows = vision_part()
        print(f"\nCarRacing-v3, same 20 episodes, held-out frames, open-loop k = 1 and {HORIZON}")
        print(
            f"| V | reconstruction MSE | obs MSE k=1 | obs MSE k={HORIZON} | / repeat-last "
            f"k={HORIZON} | codebook perplexity | controller score (10 eps) | real env steps "
            "| training wall time |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            perp = f"{r['perplexity']:.1f}" if r["perplexity"] else "—"
            print(
                f"| {r['kind']} | {r['recon']:.5f} | {r['obs1']:.5f} | {r['obsH']:.5f} | "
                f"{r['ratioH']:.3f} | {perp} | {r['score']} | {r['steps']:,} | "
                f"{r['wall']:.0f} s |"
            )
    if args.part in ("memory", "all"):
        for env in args.env or list(MEMORY_BUDGETS):
            rows = memory_part(env)
            print(f"\n{env}: M on the same V and episodes ({rows[0]['starts']} start points)")
            print(
                f"| M | parameters | latent MSE k=1 | k=5 | k={HORIZON} | latent MSE / "
                f"repeat-last k=1 | k={HORIZON} | reward MAE k=1 | done accuracy k=1 |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            for r in rows:
                lat, ratio = r["lat"], r["ratio"]
                rl = f"{ratio[0]:.3f} | {ratio[-1]:.3f}"
                print(
                    f"| {r['kind']} | {r['params']:,} | {lat[0]:.4g} | {lat[4]:.4g} | "
                    f"{lat[-1]:.4g} | {rl} | {r['reward'][0]:.4g} | {r['done'][0]:.3f} |"
                )


if __name__ == "__main__":
    main()
