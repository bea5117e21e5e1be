"""How tests start a small CartPole run from the command line, score an episode, and check
a finished run's evaluation seeds."""

from pathlib import Path

from worldmodels.cli import main
from worldmodels.data.store import EpisodeStore
from worldmodels.seeding import Stream, decode


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


def assert_evaluation_replays_no_stored_episode(
    run_dir: Path, result: dict, stores: bool = True
) -> None:
    """eval.json's reset seeds are the run's own evaluation stream, one per episode, and no
    episode the run stored (collected, or played as it learned; ``stores``: it has some)
    shares one."""
    seeds = result["seeds"]
    assert len(set(seeds)) == len(seeds) == result["episodes"] == len(result["returns"])
    assert {decode(s)[:2] for s in seeds} == {(Stream.EVALUATE, 0)}
    store = EpisodeStore(run_dir / "data" / "episodes")
    stored = {store.read_meta(i)["seed"] for i in store.valid_indices()}
    assert bool(stored) == stores and not stored & set(seeds)
    assert {decode(s)[0] for s in stored} <= {Stream.COLLECT, Stream.TRAIN}
