"""What the benchmark scripts share: the small budgets they run at, and the `worldmodels train`
command line of one run (a finished run is read back, an interrupted one resumed)."""

from __future__ import annotations

import sys
from pathlib import Path

# LunarLander-v3's classic pipeline at a small budget (the suite's)
LUNAR_CLASSIC_SMALL = [
    "collect.episodes=200",
    "vision.epochs=10",
    "memory.epochs=10",
    "controller.population=32",
    "controller.rollouts=2",
    "controller.generations=30",
    "controller.eval_every=5",
]


def train_command(
    run_dir: Path, env: str, method: str, seed: int, extra: list[str], sets_on_resume: bool
) -> list[str]:
    """The command of one run: a new one with its env, method, seed and ``--set`` items; an
    interrupted one with ``--resume`` (and the items again when ``sets_on_resume``)."""
    cmd = [sys.executable, "-m", "worldmodels", "train", "--run-dir", str(run_dir), "--quiet"]
    resume = (run_dir / "config.yaml").exists()
    if resume:
        cmd.append("--resume")
    else:
        cmd += ["--env", env, "--method", method, "--seed", str(seed)]
    if not resume or sets_on_resume:
        for item in extra:
            cmd += ["--set", item]
    return cmd


def print_table(header: str, rows: list[tuple[str, str, str]]) -> None:
    """A three-column markdown table: ``header`` is the columns' names joined by " | "."""
    print(f"| {header} |\n|---|---|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")
