import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from worldmodels.data.store import Episode, EpisodeStore, read_episode
from worldmodels.errors import CorruptEpisodeError

TESTS = Path(__file__).parent


def _episode(t=5):
    return Episode(
        np.arange((t + 1) * 2, dtype=np.float32).reshape(t + 1, 2),
        np.zeros(t, np.int64),
        np.ones(t, np.float32),
        np.array([False] * (t - 1) + [True]),
        {"env": "X", "seed": 3, "return": t},
    )


def test_round_trip_is_exact_and_leaves_no_temp_files(tmp_path):
    store = EpisodeStore(tmp_path)
    ep = _episode()
    store.write(7, ep)
    back = store.read(7)
    assert np.array_equal(back.observations, ep.observations)
    assert np.array_equal(back.terminated, ep.terminated)
    assert back.meta["length"] == 5 and back.meta["index"] == 7 and back.meta["seed"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["ep_000007.npz"]


def test_truncated_and_garbage_files_are_reported_and_skipped(tmp_path, caplog):
    store = EpisodeStore(tmp_path)
    for i in range(3):
        store.write(i, _episode())
    data = store.path(1).read_bytes()
    store.path(1).write_bytes(data[: len(data) // 2])  # truncated
    store.path(2).write_bytes(b"not a zip file")
    with pytest.raises(CorruptEpisodeError, match=r"ep_000001\.npz"):
        read_episode(store.path(1))
    assert store.valid_indices() == [0]
    assert "ep_000001.npz" in caplog.text and "ep_000002.npz" in caplog.text
    assert [i for i, _ in store.iter_episodes([0, 1, 2])] == [0]


def test_inconsistent_lengths_are_corrupt(tmp_path):
    store = EpisodeStore(tmp_path)
    ep = _episode()
    ep.rewards = ep.rewards[:3]
    store.write(0, ep)
    with pytest.raises(CorruptEpisodeError, match="inconsistent lengths"):
        store.read(0)


def _collect_cmd(run_dir, episodes):
    return [
        sys.executable,
        "-m",
        "worldmodels",
        "collect",
        "--env",
        "slow_env:SlowEnv",
        "--run-dir",
        str(run_dir),
        "--episodes",
        str(episodes),
        "--quiet",
    ]


def test_collect_killed_midway_resumes_without_loss_or_repeats(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        _collect_cmd(run_dir, 40), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    episodes = run_dir / "data" / "episodes"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(episodes.glob("ep_*.npz"))) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in episodes.glob("ep_*.npz")}
    assert 5 <= len(before) < 40, "the kill should land mid-collection"
    out = subprocess.run(
        _collect_cmd(run_dir, 40), env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    store = EpisodeStore(episodes)
    assert store.indices() == list(range(40))
    for name, stamp in before.items():  # nothing collected twice
        p = episodes / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp
    assert not list(episodes.glob(".ep_*"))
    seeds = [store.read_meta(i)["seed"] for i in range(40)]
    assert len(set(seeds)) == 40
