"""Open-loop prediction error per step k = 1..6 under each training mode, one table (seed 003's
question: can I trust this model six steps ahead?).

    .venv/bin/python benchmarks/prediction.py                                  # object-state Pong
    .venv/bin/python benchmarks/prediction.py --env CartPole-v1 --episodes 300 \
        --set vision.kind=identity --set memory.kind=residual_mlp
    .venv/bin/python benchmarks/prediction.py --env CarRacing-v3 --modes classic --episodes 20
    .venv/bin/python benchmarks/prediction.py --env CartPole-v1 --modes seed004   # joint model

One collection (random policy) in benchmarks/runs/prediction/<env>/data is shared; for each mode
a run directory gets a copy, trains V and M (``memory.train_mode=<mode>``; ``classic`` keeps
the env's own V and M, e.g. ConvVAE + MDN-RNN), and `worldmodels diagnose --horizon 6` scores
it on the held-out episodes. Columns: observation MSE per k (raw units), k=6 / k=1, and the
model's error at k = 6 as a fraction of the repeat-last baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from budgets import fork_run

ROOT = Path(__file__).parent / "runs" / "prediction"
# modes that are not a memory.train_mode: the env's own V and M, and seed 004's latent model
MODE_SETS = {
    "classic": [],
    "seed004": [
        "vision.kind=mlp_ae",
        "vision.latent_dim=128",
        "vision.hidden_dims=[256, 256]",
        "vision.epochs=0",
        "memory.kind=latent_mlp",
        "memory.hidden_dim=256",
        "memory.joint=true",
    ],
}


def cli(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "worldmodels", *args, "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"failed: worldmodels {' '.join(args)}\n{done.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="worldmodels/PongObjects-v0")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--modes", nargs="+", default=["single", "multistep", "curriculum"])
    ap.add_argument("--set", action="append", default=[], dest="extra", metavar="KEY=VALUE")
    ap.add_argument("--name", help="runs folder under benchmarks/runs/prediction (default: env)")
    args = ap.parse_args()
    root = ROOT / (args.name or args.env.replace("/", "_"))
    base = root / "data_run"
    sets = [x for s in [f"collect.episodes={args.episodes}", *args.extra] for x in ("--set", s)]
    if (
        not (base / "config.yaml").exists()
        or len(list((base / "data/episodes").glob("*.npz"))) < args.episodes
    ):
        cli(["collect", "--env", args.env, "--run-dir", str(base), *sets])
    print(
        f"env {args.env}: {args.episodes} random episodes, {args.epochs} epochs of M; "
        f"observation MSE of open-loop predictions on the held-out episodes"
    )
    print("| training mode | k=1 | k=2 | k=3 | k=4 | k=5 | k=6 | k=6 / k=1 | k=6 vs repeat-last |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in args.modes:
        run = root / mode
        if not (run / "diagnostics.json").exists():
            fork_run(base, run)
            mode_sets = MODE_SETS.get(mode, [f"memory.train_mode={mode}"])
            mode_sets = [x for s in mode_sets for x in ("--set", s)]
            cli(
                [
                    "train",
                    "--run-dir",
                    str(run),
                    "--skip-collect",
                    "--skip-controller",
                    "--no-eval",
                    "--set",
                    f"memory.epochs={args.epochs}",
                    *mode_sets,
                ]
            )
            cli(["diagnose", "--run-dir", str(run), "--horizon", "6"])
        d = json.loads((run / "diagnostics.json").read_text())
        mse = d["obs_mse"]["model"]
        ratio = d["obs_mse_ratio"]["repeat_last"][5]
        cells = " | ".join(f"{v:.4g}" for v in mse)
        print(f"| {mode} | {cells} | {mse[5] / mse[0]:.1f}x | {ratio:.3f}x |", flush=True)


if __name__ == "__main__":
    main()
