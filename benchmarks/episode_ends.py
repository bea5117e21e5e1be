"""How a run's stored training episodes ended, a block of episodes at a time: cut by the time
limit or the budget (with ``env.time_feature`` the limit's end is a terminal, counted as a cut
here), or terminated with a positive or a non-positive last reward (on
LunarLander-v3 a landing, +100, or a crash, -100), with the block's steps and mean return. It
shows a local optimum the learning curve hides: LunarLander dreamer runs crash for ~30,000 steps,
then hover until the time limit and rarely land.

    .venv/bin/python benchmarks/episode_ends.py benchmarks/runs/suite/LunarLander-v3/dreamer_s1

With ``--landings`` (LunarLander-v3, discrete actions) it says instead how the run's landings
(terminals with a positive last reward) from episode ``--since`` on ended: with a side engine
firing at the last decision, or after >= 10 "nothing" decisions, and the median final angle. A
lander pushed still by a side engine also sleeps for the +100 (an impulse on an awake Box2D
body does not reset its sleep timer), but only when it came down tilted; one that learned to
rest lands either way.

    .venv/bin/python benchmarks/episode_ends.py <run dir> --landings --since 150

Reads only the episode store (any method that stores its episodes; no model is loaded).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from worldmodels.data.store import EpisodeStore
from worldmodels.errors import UserError, run_main

KINDS = ["cut", "terminal, last reward > 0", "terminal, last reward <= 0"]


def ending(terminated: np.ndarray, rewards: np.ndarray, time_limit: bool = False) -> str:
    if not terminated.size or not terminated[-1] or time_limit:
        return "cut"
    return "terminal, last reward > 0" if rewards[-1] > 0 else "terminal, last reward <= 0"


def trailing_idle(actions: np.ndarray) -> int:
    """How many "nothing" (action 0) decisions end the episode."""
    busy = np.flatnonzero(np.asarray(actions) != 0)
    return len(actions) - 1 - int(busy[-1]) if len(busy) else len(actions)


def landing_row(episodes: list) -> str:
    """One table: landings, last action a side engine (1 or 3), ending with >= 10 "nothing",
    median |final angle| (observation 4)."""
    land = [ep for ep in episodes if ending(ep.terminated, ep.rewards) == KINDS[1]]
    side = sum(int(ep.actions[-1]) in (1, 3) for ep in land)
    idle = sum(trailing_idle(ep.actions) >= 10 for ep in land)
    angle = np.median([abs(float(ep.observations[-1, 4])) for ep in land]) if land else np.nan
    return ("| landings | last action a side engine | ending with >= 10 \"nothing\" | median "
            f"final angle (rad) |\n|---|---|---|---|\n| {len(land)} | {side} | {idle} | "
            f"{angle:.2f} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--block", type=int, default=40, help="episodes per row")
    ap.add_argument("--landings", action="store_true", help="LunarLander: how the landings end")
    ap.add_argument("--since", type=int, default=0, help="--landings: from this episode on")
    args = ap.parse_args()
    episodes = Path(args.run_dir) / "data" / "episodes"
    if not episodes.is_dir() or args.block < 1:
        raise UserError(f"{episodes} holds no stored episodes (or --block < 1): give a run dir")
    store = EpisodeStore(episodes)
    if args.landings:
        print(f"{args.run_dir}: landings from episode {args.since} on\n")
        print(landing_row([ep for i, ep in store.iter_episodes(store.valid_indices())
                           if i >= args.since]))  # fmt: skip
        return
    rows = [
        (
            ep.length,
            ending(ep.terminated, ep.rewards, bool(ep.meta.get("time_limit"))),
            float(ep.rewards.sum()),
        )
        for _, ep in store.iter_episodes(store.valid_indices())
    ]
    kinds = KINDS
    print(f"{args.run_dir}: {len(rows)} stored episodes\n")
    print("| episodes | steps | " + " | ".join(kinds) + " | mean return |")
    print("|---" * (len(kinds) + 3) + "|")
    for lo in range(0, len(rows), args.block):
        block = rows[lo : lo + args.block]
        count = Counter(kind for _, kind, _ in block)
        cells = " | ".join(str(count[k]) for k in kinds)
        steps = sum(n for n, _, _ in block)
        mean = np.mean([r for _, _, r in block])
        print(f"| {lo}-{lo + len(block) - 1} | {steps:,} | {cells} | {mean:.1f} |")


if __name__ == "__main__":
    run_main(main)
