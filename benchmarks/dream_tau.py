"""Train the controller only inside the dream at several temperatures tau and put the dream
score next to the real score: where the dream score is high and the real one is not, the
controller has learnt to exploit M's mistakes (Ha & Schmidhuber's VizDoom table).

    .venv/bin/python benchmarks/dream_tau.py                      # CartPole-v1
    .venv/bin/python benchmarks/dream_tau.py --taus 1.0 1.5 --seed 1

One base run (random rollouts -> V -> M, the `--method dream` preset) is trained once in
benchmarks/runs/dream_tau/<env>/base; each temperature copies its data and V/M checkpoints and
trains only the controller (CMA-ES in the dream), then evaluates it on 100 real episodes.
The last row repeats tau = 1 with the done head thresholded (p > 0.5) instead of sampled.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from budgets import fork_run

ROOT = Path(__file__).parent / "runs" / "dream_tau"


def train(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "worldmodels", "train", "--quiet", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--taus", nargs="+", type=float, default=[0.5, 1.0, 1.15, 1.3, 1.5])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = ROOT / args.env.replace("/", "_") / f"seed{args.seed}"
    base = root / "base"
    if not (base / "checkpoints/memory/best.pt").exists():
        train(
            [
                "--env",
                args.env,
                "--run-dir",
                str(base),
                "--method",
                "dream",
                "--seed",
                str(args.seed),
                "--skip-controller",
                "--no-eval",
            ]
        )
    print(
        "| tau | done head | dream score (best CMA-ES eval, in the dream) | real score "
        "(100 episodes) |"
    )
    print("|---|---|---|---|")
    cases = [(t, "sample") for t in args.taus] + [(1.0, "threshold")]
    for tau, mode in cases:
        run = root / f"tau{tau}_{mode}"
        if not (run / "eval.json").exists():
            fork_run(base, run, ("vision", "memory"))
            train(
                [
                    "--run-dir",
                    str(run),
                    "--method",
                    "dream",
                    "--tau",
                    str(tau),
                    "--set",
                    f"dream.done_mode={mode}",
                ]
            )
        last = torch.load(run / "checkpoints/controller/last.pt", weights_only=True)
        real = json.loads((run / "eval.json").read_text())
        print(
            f"| {tau} | {mode} | {last['progress']['best_score']:.1f} | "
            f"{real['mean_return']:.1f} ± {real['std_return']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
