"""Where a dreamer run's prioritized replay (``dreamer.prio_fraction``) puts its weight: the
replay's per-step priorities (each step's latest world-model loss) in the run's last
checkpoint, grouped by what the stored step is -- an episode's terminal step, the steps just
before one, a step with a large reward (LunarLander's leg contacts give +10 each, its landing
and crash +-100), an episode's first step, the rest -- with each group's share of the steps
and of the priority mass. A group whose mass share is above its step share is replayed more
than a uniform replay would.

    .venv/bin/python benchmarks/replay_priorities.py \
        benchmarks/runs/dreamer_prio/LunarLander-v3/dreamer_s0 --legs

Reads the episode store and dreamer/last (weights-only); loads no model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from worldmodels.data.store import EpisodeStore
from worldmodels.errors import UserError, run_main
from worldmodels.runs import load_checkpoint

GROUPS = ["terminal", "before a terminal", "a leg touches or leaves", "large reward", "first",
          "other"]  # fmt: skip


def groups(
    rewards: np.ndarray, terminal: np.ndarray, near: int, large: float, legs: np.ndarray | None
) -> list[str]:
    """The group of each step of one episode in the replay's layout (o_0 first, then a step
    per action with its reward and terminal flag); ``legs``: each step's leg-contact flags
    (LunarLander's observation 6 and 7), or None."""
    out = []
    ends = np.flatnonzero(terminal)
    for t in range(len(rewards)):
        if t == 0:
            out.append("first")
        elif terminal[t]:
            out.append("terminal")
        elif len(ends) and 0 < ends[-1] - t <= near:
            out.append("before a terminal")
        elif legs is not None and (legs[t] != legs[t - 1]).any():
            out.append("a leg touches or leaves")
        elif abs(rewards[t]) >= large:
            out.append("large reward")
        else:
            out.append("other")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--near", type=int, default=5, help="steps before a terminal grouped")
    ap.add_argument("--large", type=float, default=5.0, help="|reward| of a large-reward step")
    ap.add_argument("--legs", action="store_true", help="LunarLander: group leg contacts")
    args = ap.parse_args()
    run = Path(args.run_dir)
    ckpt = run / "checkpoints" / "dreamer" / "last.pt"
    if not ckpt.exists():
        raise UserError(f"{ckpt} does not exist: give a dreamer run's directory")
    state = load_checkpoint(ckpt).get("replay_priorities")
    if state is None:
        raise UserError(f"{run} was trained without dreamer.prio_fraction: it has no priorities")
    value = state["value"].numpy()
    capacity, total = len(value), int(state["total"])
    store = EpisodeStore(run / "data" / "episodes")
    labels: list[str] = []
    for _, ep in store.iter_episodes(store.valid_indices()):
        rewards = np.concatenate([[0.0], ep.rewards])
        terminal = np.concatenate([[False], ep.terminated])
        if args.legs and ep.observations.shape[1:] != (8,):
            raise UserError("--legs reads LunarLander's 8 observations; this run has others")
        legs = ep.observations[:, 6:8] > 0.5 if args.legs else None
        labels += groups(rewards, terminal, args.near, args.large, legs)
    labels = labels[:total]  # an episode stored after the checkpoint has no priorities yet
    held = range(max(total - capacity, 0), total)
    prio = np.array([value[p % capacity] for p in held])
    kinds = np.array([labels[p] for p in held])
    print(f"{run}: {len(held):,} steps held, top priority {state['top']:.2f}\n")
    print("| steps | count | share of steps | share of priority | mean | median | 95th pct |")
    print("|---|---|---|---|---|---|---|")
    for g in GROUPS:
        p = prio[kinds == g]
        if not len(p):
            continue
        print(
            f"| {g} | {len(p):,} | {len(p) / len(prio):.3f} | {p.sum() / prio.sum():.3f} | "
            f"{p.mean():.2f} | {np.median(p):.2f} | {np.percentile(p, 95):.2f} |"
        )


if __name__ == "__main__":
    run_main(main)
