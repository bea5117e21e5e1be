"""Regression tests for the silent fallbacks of issue 14 (bug 10): each failed before its fix."""

import json

import pytest

from worldmodels import pipeline
from worldmodels.errors import UserError
from worldmodels.methods import stages


def test_split_refuses_a_store_with_only_validation_episodes(tmp_path):
    """It used to train on the held-out episodes when the training split was empty."""
    ctx = pipeline.open_run(
        tmp_path / "r",
        "CartPole-v1",
        ["debug"],
        None,
        ["collect.episodes=1"],
        0,
        "cpu",
        progress=False,
    )
    pipeline.stage_collect(ctx)  # episode 0 is held out at val_fraction 0.1
    with pytest.raises(UserError, match="held out for validation"):
        stages.split(ctx)


def test_checkpoints_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    """Checkpoints were renamed into place without fsync."""
    import os

    from worldmodels.runs import RunDir

    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real(fd))
    run = RunDir(tmp_path / "r")
    run.save("vision/last", {"model": {"x": 1}})
    assert len(calls) >= 2  # the file, then its folder
    assert run.load("vision/last")["model"] == {"x": 1}
    assert not [p for p in run.ckpt_path("vision/last").parent.iterdir() if ".tmp" in p.name]


def test_mpc_collects_with_the_configured_workers_and_records_each_episode(tmp_path, monkeypatch):
    """mpc hard-coded one local worker; mpc.json was written only after a retraining."""
    from worldmodels.methods import mpc

    seen = {}
    real_collect = stages.collect

    def spy(*args, **kwargs):
        seen["workers"] = args[6]
        return real_collect(*args[:6], 1, *args[7:], **kwargs)

    monkeypatch.setattr(stages, "collect", spy)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mpc, "finetune_memory", interrupted)
    sets = ["collect.workers=2", "mpc.total_steps=100", "mpc.random_episodes=3"]
    ctx = pipeline.open_run(
        tmp_path / "m",
        "CartPole-v1",
        ["debug"],
        None,
        ["method=mpc", *sets],
        0,
        "cpu",
        progress=False,
    )
    with pytest.raises(KeyboardInterrupt):
        pipeline.train(ctx, "mpc", set())
    assert seen["workers"] == 2
    log = json.loads((tmp_path / "m" / "mpc.json").read_text())
    assert len(log["returns"]) == 1 and log["iterations"] == 0
