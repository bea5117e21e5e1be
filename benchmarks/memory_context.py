"""Does M predict as well late in an episode as early? (issue 14, bug 7) The MDN-RNN trains on
windows of ``memory.seq_len`` steps; acting runs it over whole episodes. Trained with every
window from the zero state (``memory.carry_state=false``), M has never seen the states it
reaches past the first window; trained from carried states (the default), it has.

    .venv/bin/python benchmarks/memory_context.py \
        --base benchmarks/runs/suite/CartPole-v1/wm-ppo_s0 --min-starts 1 64 128

The base run's episodes (a trained agent's, so long ones exist) and V are copied into two runs
under benchmarks/runs/memory_context/; each trains M with one setting (same seed, one math
thread), and `worldmodels diagnose` scores open-loop predictions on the held-out episodes from
start points t >= T, M's state teacher-forced from the episode's first step as when acting.
Columns: latent MSE at k = 1, 5 and H, and the ratio to repeat-last at k = 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from budgets import fork_run

ROOT = Path(__file__).parent / "runs" / "memory_context"


def cli(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "worldmodels", *args, "--quiet"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: worldmodels {' '.join(args)}\n{done.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="a run with long episodes and V")
    ap.add_argument("--min-starts", type=int, nargs="+", default=[1, 64, 128])
    ap.add_argument("--horizon", type=int, default=15)
    args = ap.parse_args()
    h = args.horizon
    print(f"base run {args.base}; horizon {h}; one math thread")
    cols = f"latent MSE k=1 | k=5 | k={h} | k=1 / repeat-last"
    print(f"| M trained | starts t >= | starts | {cols} |")
    print("|---|---|---|---|---|---|---|")
    for carry in (False, True):
        run = ROOT / f"carry_{str(carry).lower()}"
        if not (run / "checkpoints" / "memory" / "best.pt").exists():
            fork_run(args.base, run, ("vision",))
            cfg = yaml.safe_load((run / "config.yaml").read_text())
            cfg.setdefault("memory", {})["carry_state"] = carry
            (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
            cli(["train-memory", "--run-dir", str(run)])
        label = "carried states" if carry else "zero state per window"
        for t in args.min_starts:
            cli(["diagnose", "--run-dir", str(run), "--horizon", str(h), "--min-start", str(t)])
            r = json.loads((run / "diagnostics.json").read_text())
            m = r["latent_mse"]["model"]
            ratio = r["latent_mse_ratio"]["repeat_last"][0]
            print(
                f"| {label} | {t} | {r['starts']} | {m[0]:.4g} | {m[4]:.4g} | {m[h - 1]:.4g} | "
                f"{ratio:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
