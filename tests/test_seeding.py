"""Reset seeds: one stream per purpose, disjoint across streams and runs, for every method."""

import numpy as np
import pytest

from worldmodels.cli import main
from worldmodels.seeding import MAX_RUN_SEED, Stream, decode, reset_seed, reset_seeds

RUN_SEEDS = range(10_001)


def _stream(stream: Stream, episodes: int) -> np.ndarray:
    """The first ``episodes`` reset seeds of ``stream`` in every run seed 0-10,000."""
    return np.concatenate([np.asarray(reset_seeds(r, stream, 0, episodes)) for r in RUN_SEEDS])


def _distinct(a: np.ndarray) -> bool:
    return bool(np.all(np.diff(np.sort(a)) != 0))


def _shared(a: np.ndarray, b: np.ndarray) -> int:
    """How many entries of ``a`` are in ``b`` (by sorting: np.unique is slow on these)."""
    b = np.sort(b)
    at = np.minimum(np.searchsorted(b, a), len(b) - 1)
    return int(np.sum(b[at] == a))


def test_no_evaluation_seed_of_runs_0_to_10000_is_a_seed_any_of_them_trained_on():
    """The first 100 evaluation episodes of every run seed 0-10,000 against the first 200
    training, collection, selection and held-out episodes of all of them: none shared (and
    none repeated within a stream). The same check finds the old scheme's overlap, where
    training episode i of seed s reset with s * 1,000,003 + i and evaluation episode k with
    s + 1,000,000 + k: seed 1's evaluation episodes 2-99 were its training episodes 0-97."""
    evaluate = _stream(Stream.EVALUATE, 100)
    assert _distinct(evaluate)
    for other in (Stream.TRAIN, Stream.COLLECT, Stream.SELECT, Stream.HELD_OUT):
        seeds = _stream(other, 200)
        assert _distinct(seeds), other
        assert _shared(evaluate, seeds) == 0, other
    old_train = np.array([1 * 1_000_003 + i for i in range(200)])
    old_eval = np.array([1 + 1_000_000 + k for k in range(100)])
    assert _shared(old_eval, old_train) == 98


def test_a_reset_seed_names_its_stream_run_and_episode_and_rejects_what_would_collide():
    seed = reset_seed(7, Stream.HELD_OUT, 12)
    assert decode(seed) == (Stream.HELD_OUT, 7, 12) and 0 < seed < 2**63
    assert decode(reset_seed(MAX_RUN_SEED, Stream.TRAIN, 2**32 - 1)) == (
        Stream.TRAIN, MAX_RUN_SEED, 2**32 - 1,
    )  # fmt: skip
    with pytest.raises(ValueError, match="run seed"):
        reset_seed(MAX_RUN_SEED + 1, Stream.TRAIN, 0)
    with pytest.raises(ValueError, match="episode index"):
        reset_seed(0, Stream.TRAIN, 2**32)


def test_a_seed_beyond_the_streams_range_is_refused_in_one_line(tmp_path, capsys):
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "r")]
    assert main([*argv, "--seed", str(MAX_RUN_SEED + 1), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed" in err and str(MAX_RUN_SEED) in err, err
    assert not (tmp_path / "r" / "checkpoints").exists()
