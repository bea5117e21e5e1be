"""Every real episode's reset seed, from one disjoint stream per purpose, for every method.

A reset seed packs (stream, run seed, episode index) into one 63-bit integer, so two episodes
share a reset seed only when they share all three: no evaluation episode of any run replays a
training episode of any run, by construction rather than by an offset that a long run or a
neighbouring seed can reach. Gymnasium hashes the whole integer (``numpy.random.SeedSequence``),
so neighbouring reset seeds give unrelated episodes.
"""

from __future__ import annotations

from enum import IntEnum

RUN_SEED_BITS = 27
INDEX_BITS = 32
MAX_RUN_SEED = 2**RUN_SEED_BITS - 1
"""The largest run seed (``--seed``) whose streams stay disjoint."""


class Stream(IntEnum):
    """What an episode is played for."""

    COLLECT = 1
    """Recorded to train a model: ``collect``, a dream method's later rounds, MPC's data."""
    TRAIN = 2
    """Played by an agent as it learns: the dreamer's and PPO's episodes, CMA-ES's rollouts,
    an actor-critic's real envs."""
    SELECT = 3
    """Played during training to choose among agents: a checkpoint's or a stop's score."""
    EVALUATE = 4
    """``evaluate`` and its video: the reported score."""
    HELD_OUT = 5
    """``diagnose``'s fresh episodes, which no model trained on."""


def reset_seed(run_seed: int, stream: Stream, index: int) -> int:
    """The reset seed of episode ``index`` of ``stream`` in the run seeded ``run_seed``."""
    if not 0 <= run_seed <= MAX_RUN_SEED:
        raise ValueError(f"run seed {run_seed} is outside [0, {MAX_RUN_SEED}]")
    if not 0 <= index < 2**INDEX_BITS:
        raise ValueError(f"episode index {index} is outside [0, 2**{INDEX_BITS})")
    return (int(stream) << (RUN_SEED_BITS + INDEX_BITS)) | (run_seed << INDEX_BITS) | index


def reset_seeds(run_seed: int, stream: Stream, first: int, count: int) -> list[int]:
    """Episodes ``first`` to ``first + count - 1`` of one stream."""
    if count <= 0:
        return []
    base = reset_seed(run_seed, stream, first)
    reset_seed(run_seed, stream, first + count - 1)  # the last index is in range too
    return list(range(base, base + count))


def decode(seed: int) -> tuple[Stream, int, int]:
    """(stream, run seed, index) of a reset seed made by :func:`reset_seed`."""
    index = seed & (2**INDEX_BITS - 1)
    run_seed = (seed >> INDEX_BITS) & MAX_RUN_SEED
    return Stream(seed >> (RUN_SEED_BITS + INDEX_BITS)), run_seed, index
