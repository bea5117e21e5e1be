"""How tests start a small CartPole run from the command line, and score an episode."""

from pathlib import Path

from worldmodels.cli import main


def train_debug(run_dir: Path, sets: list[str], *extra: str) -> int:
    """``worldmodels train`` on CartPole-v1 with ``--preset debug``, quiet, each of ``sets``
    as a ``--set``; the exit status."""
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    return main([*argv, "--quiet", *extra, *(x for s in sets for x in ("--set", s))])


def episode_return(env, act, seed: int) -> float:
    """One episode of ``act(obs) -> action`` in a Gymnasium env; its summed reward."""
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(act(obs))
        total, done = total + float(reward), terminated or truncated
    return total
