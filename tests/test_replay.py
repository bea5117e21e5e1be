"""The replay of real steps (``data/replay.py``): windows that follow the ring, the stream
from the episode store that draws the ring's windows, end windows, and a run whose replay
exceeds its memory budget training as the RAM ring's does."""

import os

import numpy as np
import pytest
import torch
from dreamer_cli import DEBUG, run_cmd, train_cmd

from worldmodels.data.replay import SequenceReplay
from worldmodels.data.store import Episode, EpisodeStore


def test_replay_windows_follow_the_ring_and_mark_their_start():
    rep = SequenceReplay(10, (1,), np.dtype(np.float32), 2)
    ep = Episode(
        observations=np.arange(7, dtype=np.float32)[:, None],
        actions=np.array([0, 1, 0, 1, 0, 1]),
        rewards=np.arange(6, dtype=np.float32),
        terminated=np.array([False] * 5 + [True]),
    )
    rep.add_episode(ep, np.eye(2, dtype=np.float32)[ep.actions])
    assert rep.size == 7 and rep.is_first[0] and rep.is_terminal[6]
    assert rep.reward[0] == 0 and rep.reward[1] == 0 and rep.reward[6] == 5  # r_{t-1} at o_t
    assert np.array_equal(rep.action[1], [1, 0]) and np.array_equal(rep.action[0], [0, 0])
    ring = SequenceReplay(10, (1,), np.dtype(np.float32), 2)
    for i in range(14):  # steps 0..13 in a ring of 10: 4..13 are kept
        ring.add(np.array([i], np.float32), np.zeros(2, np.float32), 0.0, i % 5 == 0, False)
    batch = ring.sample(np.random.default_rng(0), 300, 4)
    obs = batch["obs"][..., 0]
    assert obs.min() == 4 and obs.max() == 13  # every kept step is reachable, no older one
    assert np.all(np.diff(obs, axis=1) == 1)  # consecutive: no window crosses the seam 13 -> 4
    assert batch["is_first"][:, 0].all()
    assert np.array_equal(batch["is_first"][:, 1:], obs[:, 1:] % 5 == 0)


def test_streaming_replay_draws_the_ring_s_windows_from_disk(tmp_path):
    """Episodes in the store + one in progress: the disk replay returns exactly the RAM
    ring's windows for the same draws, also once the capacity drops the oldest steps, with
    a cache smaller than one episode. With ``returns_gamma`` all three carry each finished
    step's return to go (episode 3 is cut, bootstrapped by its meta's ``boot_value``), NaN for
    the episode in progress."""
    from worldmodels.data.replay import StreamingReplay

    rng = np.random.default_rng(0)
    onehot = lambda a: np.eye(2, dtype=np.float32)[a]  # noqa: E731
    for capacity, gamma in ((1000, None), (37, None), (1000, 0.9), (37, 0.9)):
        store = EpisodeStore(tmp_path / f"episodes{capacity}{gamma}")
        ring = SequenceReplay(capacity, (3,), np.float32, 2, gamma)
        disk = StreamingReplay(capacity, store, onehot, cache_bytes=200, returns_gamma=gamma)
        for index, length in enumerate([5, 1, 12, 7]):
            ep = Episode(
                observations=rng.normal(size=(length + 1, 3)).astype(np.float32),
                actions=rng.integers(0, 2, length),
                rewards=rng.normal(size=length).astype(np.float32),
                terminated=(np.arange(length) == length - 1) & (index != 3),
                meta={"boot_value": 2.5} if index == 3 else {},
            )
            for replay in (ring, disk):
                replay.add(ep.observations[0], np.zeros(2, np.float32), 0.0, True, False)
                for t in range(length):
                    feat = onehot(ep.actions[t])
                    terminal = bool(ep.terminated[t])
                    replay.add(ep.observations[t + 1], feat, ep.rewards[t], False, terminal)
            store.write(index, ep)
            disk.commit(index, ep.meta.get("boot_value"))
            ring.commit(index, ep.meta.get("boot_value"))
        if gamma is not None and capacity == 1000:  # episode 3: o_0..o_7, cut after r_6
            rewards, mc = ep.rewards.astype(np.float64), ring.mc[-8 + ring.pos : ring.pos]
            assert mc[-1] == 2.5 and mc[-2] == pytest.approx(rewards[6] + 0.9 * 2.5, rel=1e-6)
            assert mc[0] == pytest.approx(sum(0.9**t * r for t, r in enumerate(rewards))
                                          + 0.9**7 * 2.5, rel=1e-5)  # fmt: skip
        for t in range(3):  # an episode in progress
            for replay in (ring, disk):
                replay.add(np.full(3, t, np.float32), onehot(1), 1.0, t == 0, False)
        if gamma is not None:
            assert np.isnan(ring.mc[(ring.pos - np.arange(1, 4)) % capacity]).all()
            assert not np.isnan(ring.mc[(ring.pos - np.arange(4, 9)) % capacity]).any()
        rebuilt = StreamingReplay(capacity, store, onehot, cache_bytes=200, returns_gamma=gamma)
        for index in range(4):
            rebuilt.add_episode(store.read(index), np.zeros(0), index)
        for t in range(3):
            rebuilt.add(np.full(3, t, np.float32), onehot(1), 1.0, t == 0, False)
        assert disk.size == ring.size == rebuilt.size
        for end_fraction in (0.0, 0.5):
            a = ring.sample(np.random.default_rng(1), 16, 6, end_fraction)
            for other in (disk, rebuilt):
                b = other.sample(np.random.default_rng(1), 16, 6, end_fraction)
                assert ("mc_return" in a) == (gamma is not None) and a.keys() == b.keys()
                for key in a:
                    same = np.array_equal(a[key], b[key], equal_nan=key == "mc_return")
                    assert same, (capacity, gamma, end_fraction, key)
        assert disk.cached <= 200


def test_end_fraction_draws_windows_that_end_at_episode_ends():
    """end_fraction 0.5 of 8 windows: the first 4 end at a terminal step (one closer than T
    to the oldest step starts at it), the other 4 are the uniform draws of end_fraction 0."""
    ring = SequenceReplay(100, (1,), np.dtype(np.float32), 2)
    terminals = {2, 30, 61}
    for i in range(80):
        ring.add(np.array([i], np.float32), np.zeros(2, np.float32), 0.0, False, i in terminals)
    uniform = ring.sample(np.random.default_rng(3), 8, 5)
    mixed = ring.sample(np.random.default_rng(3), 8, 5, 0.5)
    obs = mixed["obs"][..., 0]
    for w in obs[:4]:
        assert w[-1] in terminals or (w[0] == 0 and 2 in w), w
    assert np.array_equal(uniform["obs"][4:], mixed["obs"][4:])
    assert not np.array_equal(uniform["obs"][:4], mixed["obs"][:4])
    assert mixed["is_terminal"][:4].any(axis=1).all()
    many = ring.sample(np.random.default_rng(4), 400, 5, 0.5)["obs"][:200, -1, 0]
    assert set(np.unique(many)) == {4, 30, 61}  # terminal 2 sits in the window 0..4


def test_a_replay_larger_than_its_memory_streams_and_trains_identically(tmp_path):
    """dreamer.replay_memory_gb below the replay's size: the run streams from the episode
    store and ends bit-identical to the RAM ring's run (with the configuration's end windows
    and Monte Carlo value targets of episodes cut at 20 steps)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sets = ["--set", "threads=1", "--no-eval", "--set", "dreamer.repval_return=mc",
            "--set", "dreamer.repval_scale=1.0", "--set", "env.max_episode_steps=20"]  # fmt: skip
    ring = run_cmd(train_cmd(tmp_path / "ring", *DEBUG, *sets), env)
    stream = run_cmd(
        train_cmd(tmp_path / "disk", *DEBUG, *sets, "--set", "dreamer.replay_memory_gb=1e-6"), env
    )
    assert ring.returncode == 0 and stream.returncode == 0, stream.stderr
    a = torch.load(tmp_path / "ring/checkpoints/dreamer/last.pt", weights_only=True)
    b = torch.load(tmp_path / "disk/checkpoints/dreamer/last.pt", weights_only=True)
    assert a["progress"] == b["progress"] and a["progress"]["updates"] > 0
    for k, v in a["world"]["state_dict"].items():
        assert torch.equal(v, b["world"]["state_dict"][k]), k
