"""Exact resume of the actor-critic methods: a run SIGKILLed mid-training and resumed ends
bit-identical to one never killed -- the episodes in progress are replayed from their reset
seeds and actions, V/M's carried state, the collector's observation, the algorithm's carried
state (a2c's previous step, wm-ppo's minibatch stream) and the RNG come from ``<ns>/last``."""

import os
import signal
import subprocess
import sys

import pytest
import torch

SETS = [
    "imagination.random_steps=200",
    "imagination.retrain_every=2",
    "imagination.retrain_epochs=1",
    "ac.total_steps=480",
    "ac.num_envs=2",
    "ac.n_steps=16",
    "ac.ppo_epochs=2",
    "ac.target_return=1e9",
    "threads=1",
]


def _train(run_dir, method, resume=False):
    cmd = [sys.executable, "-m", "worldmodels", "train", "--env", "CartPole-v1", "--quiet"]
    cmd += ["--run-dir", str(run_dir), "--preset", "debug", "--method", method, "--no-eval"]
    cmd += [x for s in SETS for x in ("--set", s)]
    return cmd + (["--resume"] if resume else [])


@pytest.mark.parametrize("method", ["a2c", "wm-ppo"])
def test_killed_actor_critic_resumes_bit_identical(tmp_path, method):
    ns = method.replace("-", "_")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert subprocess.run(_train(full, method), env=env).returncode == 0
    kill = {**env, "WORLDMODELS_KILL_AFTER_SAVE": f"{ns}/last:5"}  # episodes in progress
    assert subprocess.run(_train(cut, method), env=kill).returncode == -signal.SIGKILL
    killed = torch.load(cut / f"checkpoints/{ns}/last.pt", weights_only=True)
    assert killed["progress"]["iteration"] == 5 and not killed["progress"]["complete"]
    assert any(len(a) for a in killed["envs"]["actions"])  # an episode was mid-way
    refused = subprocess.run(_train(cut, method), env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr  # one line, no traceback
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    done = subprocess.run(_train(cut, method, resume=True), env=env, capture_output=True)
    assert done.returncode == 0, done.stderr[-2000:]
    a = torch.load(full / f"checkpoints/{ns}/last.pt", weights_only=True)
    b = torch.load(cut / f"checkpoints/{ns}/last.pt", weights_only=True)
    assert a["progress"] == b["progress"]
    for key in ("model",):
        for name, value in a[key]["state_dict"].items():
            assert torch.equal(value, b[key]["state_dict"][name]), name
    for key in ("vision_state", "memory_state"):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), f"{key}.{name}"
    assert (full / "curve.jsonl").read_text() == (cut / "curve.jsonl").read_text()
    if method == "wm-ppo":  # imagined steps were used and M retrained on the agent's episodes
        assert b["progress"]["imagined_steps"] > 0
        mem = torch.load(cut / "checkpoints/memory/best.pt", weights_only=True)
        assert mem["progress"].get("retrained_on_episodes", 0) > 0
    episodes = sorted(p.name for p in (full / "data/episodes").glob("ep_*.npz"))
    assert episodes == sorted(p.name for p in (cut / "data/episodes").glob("ep_*.npz"))
    for name in episodes:  # the same episodes, none lost or doubled
        x = (full / "data/episodes" / name).read_bytes()
        assert x == (cut / "data/episodes" / name).read_bytes(), name
