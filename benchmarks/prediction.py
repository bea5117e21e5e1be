"""Open-loop prediction: how far ahead a finished run's world model can be trusted, as
``worldmodels diagnose`` measures it, kept as data for the results page.

    .venv/bin/python benchmarks/prediction.py --run runs/dreamer-avx512_s5 --samples 16 0
    .venv/bin/python benchmarks/prediction.py --run RUN --horizon 15

Per run and prediction (``--samples``: the mean of N rollouts sampled at tau = 1, for an M
whose tau = 0 step is not its mean; 0: the tau = 0 path), ``pipeline.diagnose`` rolls M open
loop from up to 2,000 start points of held-out episodes (for a dreamer run, 10 of its agent
and 10 of the random policy, recorded fresh) under the logged actions, and the observation
MSE at each k = 1..H is set beside the repeat-last baseline's -- overall and per observation
feature, since a mean over features can hide one the model does not keep. Each result is
kept in benchmarks/results/prediction.json.gz (one per run, prediction and horizon, made
again when the run's weights changed); the table is printed with the command beside it. One
math thread.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import dream_transfer
import records
import torch

from worldmodels.evaluation.diagnostics import feature_ratios, ratio

RESULTS = records.RESULTS / "prediction.json.gz"


def measure(run_dir: Path, samples: int, horizon: int, weights: str) -> dict[str, Any]:
    """``diagnose`` of one run, without writing into it, as a kept row."""
    from worldmodels import pipeline

    ctx = pipeline.open_run(run_dir, progress=False)
    try:
        result = pipeline.diagnose(ctx, horizon, write=False, samples=samples)
    finally:
        ctx.close()
    evaluated = json.loads((run_dir / "eval.json").read_text())
    obs = result["obs_mse"]
    row = {
        "run": str(run_dir),
        "env": result["env"],
        "samples": samples,
        "prediction_samples": result["samples"],
        "horizon": horizon,
        "starts": result["starts"],
        "held_out_episodes": result["held_out_episodes"],
        "reconstruction_mse": result["reconstruction_mse"],
        "obs_mse": {"model": obs["model"], "repeat_last": obs["repeat_last"]},
        "run_return": evaluated["mean_return"],
        "run_steps": evaluated["real_env_steps"],
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {platform.system()}",
        "run_fingerprint": weights,
    }
    per_feature = result.get("obs_mse_per_feature")
    if per_feature is not None:
        row["obs_mse_per_feature"] = {
            "model": per_feature["model"],
            "repeat_last": per_feature["repeat_last"],
        }
    return row


def key(row: dict[str, Any]) -> tuple[str, int, int]:
    return row["run"], row["samples"], row["horizon"]


def load(path: Path = RESULTS) -> list[dict[str, Any]]:
    """Every prediction result kept so far."""
    return records.kept_rows(path)


def prediction(row: dict[str, Any]) -> str:
    n = row["prediction_samples"]
    return f"mean of {n} sampled rollouts" if n else "τ = 0 path"


def table(rows: list[dict[str, Any]]) -> str:
    """One line per (run, prediction, horizon): the observation MSE at k = 1 and k = H, its
    ratio to repeat-last there and at its worst k, the ks at which it beats repeat-last, and
    each feature's ratio at k = 1 and k = H."""
    lines = [
        "| run | prediction | obs MSE k = 1 / H | ÷ repeat-last k = 1 / H | worst ÷ (k) "
        "| k that beat repeat-last | per feature ÷ repeat-last, k = 1 / H |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (dream_transfer.tuning(r["run"]), *key(r))):
        obs = row["obs_mse"]
        r = ratio(obs["model"], obs["repeat_last"])
        h = row["horizon"]
        beat = int((r < 1).sum())
        features = row.get("obs_mse_per_feature")
        shown = "—"
        if features is not None:
            shown = ", ".join(
                f"{i}: {f[0]:.3g} / {f[-1]:.3g}" for i, f in enumerate(feature_ratios(features))
            )
        tuned = ", tuning" if dream_transfer.tuning(row["run"]) else ""
        lines.append(
            f"| {Path(row['run']).name} ({row['env']}{tuned}; {row['run_return']:.1f}) | "
            f"{prediction(row)} | {obs['model'][0]:.3g} / {obs['model'][-1]:.3g} | "
            f"{r[0]:.3g} / {r[-1]:.3g} | {r.max():.3g} ({int(r.argmax()) + 1}) | "
            f"{beat} of {h} | {shown} |"
        )
    return "\n".join(lines)


SECTION = """\
## Open-loop prediction

How far ahead a run's world model can be trusted: `worldmodels diagnose` rolls M open loop
from up to 2,000 start points of held-out episodes (for a dreamer run, 10 episodes of its agent
and 10 of the random policy, recorded fresh) under the logged actions and sets its observation
MSE at each k beside the repeat-last baseline's (÷ repeat-last < 1: the model predicts better
than "nothing changes"). The RSSM is scored by the mean of 16 rollouts sampled at τ = 1 (its
τ = 0 step takes each categorical latent's mode, which is not its mean) and, beside it, by its
τ = 0 path. The per-feature ratios show what the mean over features hides; for CartPole-v1 the
features are the cart's position and velocity and the pole's angle and angular velocity. The
run's own score is beside its name. Made by `python benchmarks/prediction.py --run RUN_DIR
--samples 16 0`, one math thread; the runs are those the dream-transfer table names
(dreamer-avx512_s5: the CartPole table's seed-5 command made again on a host with AVX-512 and
no AMX, 491.2 after 10,000 real steps).
"""


def section(rows: list[dict[str, Any]]) -> list[str]:
    """The results page's section on open-loop prediction (nothing without results)."""
    return [SECTION, table(rows) + "\n"] if rows else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, action="append", required=True, help="repeatable")
    ap.add_argument("--samples", nargs="+", type=int, default=[16])
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument(
        "--fresh", action="store_true", help="measure again what is kept for the same weights"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    made: list[dict[str, Any]] = []
    for run_dir in args.run:
        weights = dream_transfer.fingerprint(run_dir)
        for samples in args.samples:
            want = (str(run_dir), samples, args.horizon)
            kept = [r for r in load() if key(r) == want]
            if kept and not args.fresh and kept[0]["run_fingerprint"] == weights:
                made.append(kept[0])
                continue
            row = measure(run_dir, samples, args.horizon, weights)
            records.keep_row(RESULTS, row, key)
            made.append(row)
    print(table(made))


if __name__ == "__main__":
    main()
