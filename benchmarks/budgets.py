"""What the benchmark scripts share: the small budgets they run at, and the `worldmodels train`
command line of one run (a finished run is read back, an interrupted one resumed)."""

from __future__ import annotations

import sys
from pathlib import Path

# LunarLander-v3's classic pipeline at a small budget (classic_pipeline.py and the suite)
LUNAR_CLASSIC_SMALL = [
    "collect.episodes=200",
    "vision.epochs=10",
    "memory.epochs=10",
    "controller.population=32",
    "controller.rollouts=2",
    "controller.generations=30",
    "controller.eval_every=5",
]


def pixel_small(max_episode_steps: int) -> list[str]:
    """A pixel env's classic pipeline far below what it needs (GPU-days in the papers)."""
    return [
        f"env.max_episode_steps={max_episode_steps}",
        "collect.episodes=20",
        "vision.epochs=5",
        "memory.epochs=10",
        "memory.seq_len=32",
        "controller.population=16",
        "controller.rollouts=1",
        "controller.generations=10",
        "controller.eval_every=5",
        "controller.eval_episodes=4",
        "evaluate.episodes=10",
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


def fork_run(base: Path, run: Path, checkpoints: tuple[str, ...] = ()) -> None:
    """A fresh run directory ``run`` holding ``base``'s config, env spec, episodes and the
    named checkpoint folders (so a variant retrains only what it changes)."""
    import shutil

    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    for name in ("config.yaml", "env_spec.json"):
        shutil.copy(base / name, run / name)
    shutil.copytree(base / "data", run / "data")
    for part in checkpoints:
        shutil.copytree(base / "checkpoints" / part, run / "checkpoints" / part)


def print_table(header: str, rows: list[tuple[str, str, str]]) -> None:
    """A three-column markdown table: ``header`` is the columns' names joined by " | "."""
    print(f"| {header} |\n|---|---|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")
