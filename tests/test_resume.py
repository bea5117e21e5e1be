"""Interrupting a stage mid-way and resuming gives exactly the uninterrupted result."""

import numpy as np
import pytest
import torch

from worldmodels import pipeline
from worldmodels.errors import UserError


def _ctx(run_dir, resume=False, **sets):
    items = [f"{k}={v}" for k, v in sets.items()]
    return pipeline.open_run(
        run_dir,
        "CartPole-v1",
        ["debug"] if not resume else [],
        None,
        items,
        0,
        "cpu",
        resume,
        progress=False,
    )


def _prepare(run_dir):
    ctx = _ctx(
        run_dir,
        **{
            "vision.epochs": 4,
            "memory.epochs": 3,
            "controller.generations": 4,
            "collect.episodes": 12,
        },
    )
    pipeline.stage_collect(ctx)
    return ctx


def _interrupt_after(monkeypatch, target, attr, calls):
    original = getattr(target, attr)
    count = {"n": 0}

    def wrapped(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(target, attr, wrapped)


def _state(run, name):
    return run.load(f"{name}/last")["model"]["state_dict"]


def test_vision_and_memory_resume_bit_identical(tmp_path, monkeypatch):
    from worldmodels.training import vision as vision_mod

    ref = _prepare(tmp_path / "ref")
    pipeline.stage_vision(ref)
    pipeline.stage_memory(ref)

    ctx = _prepare(tmp_path / "cut")
    with monkeypatch.context() as m:  # kill during epoch 3's batches
        _interrupt_after(m, vision_mod, "frame_batches", 4)  # train + val batches per epoch
        with pytest.raises(KeyboardInterrupt):
            pipeline.stage_vision(ctx)
    assert 0 < ctx.run.load("vision/last")["progress"]["epoch"] < 4
    with pytest.raises(UserError, match="pass --resume"):
        pipeline.stage_vision(_ctx(tmp_path / "cut", resume=False))
    pipeline.stage_vision(_ctx(tmp_path / "cut", resume=True))
    for k, v in _state(ref.run, "vision").items():
        assert torch.equal(v, _state(ctx.run, "vision")[k]), k

    from worldmodels.training import memory as memory_mod

    with monkeypatch.context() as m:
        _interrupt_after(m, memory_mod, "sequence_batches", 1)
        with pytest.raises(KeyboardInterrupt):
            pipeline.stage_memory(_ctx(tmp_path / "cut", resume=True))
    pipeline.stage_memory(_ctx(tmp_path / "cut", resume=True))
    for k, v in _state(ref.run, "memory").items():
        assert torch.equal(v, _state(ctx.run, "memory")[k]), k


def test_cmaes_resume_continues_the_same_search(tmp_path, monkeypatch):
    from worldmodels.training import population

    runs = {}
    for name in ("ref", "cut"):
        ctx = _prepare(tmp_path / name)
        pipeline.stage_vision(ctx)
        pipeline.stage_memory(ctx)
        runs[name] = ctx
    pipeline.stage_controller(runs["ref"])
    with monkeypatch.context() as m:  # 4 population blocks + 2 evaluation blocks a generation
        _interrupt_after(m, population, "evaluate_params", 13)
        with pytest.raises(KeyboardInterrupt):
            pipeline.stage_controller(runs["cut"])
    assert runs["cut"].run.load("controller/last")["progress"]["generation"] == 2
    pipeline.stage_controller(_ctx(tmp_path / "cut", resume=True))
    a, b = runs["ref"].run.load("controller/last"), runs["cut"].run.load("controller/last")
    assert a["progress"] == b["progress"]
    assert torch.equal(a["model"]["state_dict"]["params"], b["model"]["state_dict"]["params"])
    assert torch.equal(a["best_params"], b["best_params"])


def test_tampered_cmaes_state_is_refused(tmp_path, monkeypatch):
    from worldmodels.training import population

    ctx = _prepare(tmp_path / "run")
    pipeline.stage_vision(ctx)
    pipeline.stage_memory(ctx)
    with monkeypatch.context() as m:
        _interrupt_after(m, population, "evaluate_params", 7)
        with pytest.raises(KeyboardInterrupt):
            pipeline.stage_controller(ctx)
    last = ctx.run.load("controller/last")
    data = bytearray(last["es_state"].numpy().tobytes())
    data[-3] ^= 0xFF
    last["es_state"] = torch.tensor(np.frombuffer(bytes(data), np.uint8))
    ctx.run.save("controller/last", last)
    with pytest.raises(UserError, match="so it is not unpickled"):
        pipeline.stage_controller(_ctx(tmp_path / "run", resume=True))
