"""How tests start a small CartPole run from the command line."""

from pathlib import Path

from worldmodels.cli import main


def train_debug(run_dir: Path, sets: list[str], *extra: str) -> int:
    """``worldmodels train`` on CartPole-v1 with ``--preset debug``, quiet, each of ``sets``
    as a ``--set``; the exit status."""
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    return main([*argv, "--quiet", *extra, *(x for s in sets for x in ("--set", s))])
