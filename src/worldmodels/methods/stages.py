"""The stages methods are built from: collect, V, M, CMA-ES C, each resumable; and what every
method needs to read a run (the split, the world model with its V check, the wall-time
counters)."""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from worldmodels.agent import ControllerPolicy
from worldmodels.config import Config
from worldmodels.controllers.linear import PolicyShape
from worldmodels.data.collect import collect
from worldmodels.data.store import EpisodeStore, is_validation
from worldmodels.envs import EnvSpec
from worldmodels.errors import UserError
from worldmodels.parallel import FailurePolicy
from worldmodels.runs import Context, RunDir, atomic_write_json, check_spec
from worldmodels.training.supervised import StageData
from worldmodels.world_model import WorldModel, load_world_model

LOG = logging.getLogger(__name__)


@contextmanager
def timed(ctx: Context, stage: str):
    """Adds the stage's wall time to ``counters.json`` at every checkpoint the stage saves and
    when it ends or is interrupted, so a SIGKILL loses only the time since its last checkpoint
    (the work it redoes after ``--resume`` is timed again)."""
    since = time.time()

    def flush() -> None:
        nonlocal since
        now = time.time()
        counters = ctx.run.counters()
        walls = counters.setdefault("wall_seconds", {})
        walls[stage] = walls.get(stage, 0.0) + now - since
        atomic_write_json(ctx.run.root / "counters.json", counters)
        since = now

    outer, ctx.run.on_save = ctx.run.on_save, flush
    try:
        yield
    finally:
        ctx.run.on_save = outer
        flush()


def split(ctx: Context) -> tuple[list[int], list[int]]:
    store = EpisodeStore(ctx.run.episodes)
    indices = store.valid_indices()
    val = [i for i in indices if is_validation(i, ctx.cfg.collect.val_fraction)]
    train = [i for i in indices if not is_validation(i, ctx.cfg.collect.val_fraction)]
    if not train and val:
        raise UserError(
            f"every one of the {len(val)} episodes in {ctx.run.episodes} is held out for "
            f"validation (collect.val_fraction={ctx.cfg.collect.val_fraction}); collect more "
            f"episodes (collect.episodes) or lower collect.val_fraction"
        )
    return train, val


def require_resume(ctx: Context, stage: str) -> None:
    """A stage's damaged checkpoints are set aside (it retrains them); an interrupted stage
    continues only with --resume (checked before anything is written)."""
    damaged = ctx.run.damaged(stage)
    if damaged:
        moved = ctx.run.set_aside(stage, "damaged")
        LOG.warning(
            "%s cannot be loaded; moved %s to %s and training the %s stage afresh",
            ", ".join(str(p) for p in damaged),
            ctx.run.checkpoints / stage,
            moved,
            stage,
        )
    if ctx.resume or not ctx.run.has(f"{stage}/last"):
        return
    progress = ctx.run.load(f"{stage}/last")["progress"]
    if not progress.get("complete"):
        if "epoch" in progress:
            where = f"epoch {progress['epoch']}"
        elif "real_env_steps" in progress and "generation" not in progress:
            where = f"{progress['real_env_steps']:,} real env steps"
        else:
            where = f"generation {progress.get('generation')}"
        raise UserError(
            f"{ctx.run.root} has an interrupted {stage} stage (at {where}); pass "
            f"--resume to continue it or use a new --run-dir"
        )


def failure_policy(cfg: Config) -> FailurePolicy:
    return FailurePolicy(cfg.parallel.task_timeout, cfg.parallel.max_retries)


def collect_into(ctx: Context, target: int, policy: str = "random") -> int:
    """Fill the run's episode store up to ``target`` episodes with ``policy`` (``random`` or a
    run directory whose agent acts), with the run's workers and executor."""
    return collect(
        EpisodeStore(ctx.run.episodes),
        ctx.cfg.env,
        ctx.spec,
        target,
        ctx.cfg.seed,
        policy,
        ctx.cfg.collect.workers,
        ctx.progress,
        ctx.cfg.parallel.executor,
        ctx.cfg.parallel.ray_address,
        failure_policy(ctx.cfg),
        None if policy == "random" else load_agent_policy,
    )


def stage_collect(ctx: Context) -> dict[str, Any]:
    store = EpisodeStore(ctx.run.episodes)
    with timed(ctx, "collect"):
        collect_into(ctx, ctx.cfg.collect.episodes, ctx.cfg.collect.policy)
    summary = store.summary()
    own = store.summary(first=ctx.cfg.collect.episodes)  # not what later stages added
    if own["episodes"]:  # the random (or given) policy's point of the learning curve
        ctx.run.log_curve(own["env_steps"], own["mean_return"])
    if summary["episodes"] < ctx.cfg.collect.episodes:
        raise UserError(
            f"only {summary['episodes']} of {ctx.cfg.collect.episodes} episodes in "
            f"{ctx.run.episodes} could be read; re-run collect"
        )
    return summary


def stage_data(ctx: Context, train: list[int], val: list[int]) -> StageData:
    return StageData(ctx, train, val)


def stage_vision(ctx: Context) -> dict[str, float]:
    from worldmodels.training.vision import train_vision

    require_resume(ctx, "vision")
    train, val = split(ctx)
    with timed(ctx, "vision"):
        return train_vision(stage_data(ctx, train, val))


def stage_memory(ctx: Context) -> dict[str, float]:
    from worldmodels.training.joint import train_joint
    from worldmodels.training.memory import train_memory

    require_resume(ctx, "memory")
    require_resume(ctx, "world")
    train, val = split(ctx)
    with timed(ctx, "memory"):
        trainer = train_joint if ctx.cfg.memory.joint else train_memory
        return trainer(stage_data(ctx, train, val))


def world_model(ctx: Context) -> WorldModel:
    world = load_world_model(ctx.run, ctx.spec, ctx.device)
    mem = ctx.run.load("memory/best")
    if not ctx.run.made_from(mem.get("vision_sha256"), "vision/best"):
        raise UserError(
            f"M in {ctx.run.checkpoints} was trained on another V; retrain it "
            f"with `worldmodels train-memory --run-dir {ctx.run.root}` (it sets the old M "
            f"aside), then the controller"
        )
    return world


def stage_controller(ctx: Context) -> dict[str, Any]:
    from worldmodels.training.cmaes import train_cmaes

    require_resume(ctx, "controller")
    world = world_model(ctx)
    with timed(ctx, "controller"):
        return train_cmaes(ctx, world)


def controller_params(ctx: Context) -> tuple[PolicyShape, np.ndarray]:
    payload = ctx.run.load("controller/best")
    check_spec(payload, ctx.spec, str(ctx.run.ckpt_path("controller/best")))
    kw = payload["model"]["kwargs"]
    shape = PolicyShape(kw["in_dim"], kw["out_dim"], tuple(kw["hidden"]))
    return shape, payload["model"]["state_dict"]["params"].numpy()


def load_agent_policy(run_dir: str, spec: EnvSpec) -> ControllerPolicy:
    """A trained agent (V + M + C) from another run directory, e.g. to collect with it."""
    run = RunDir(run_dir)
    if not run.has_config():
        raise UserError(
            f"collect.policy={run_dir} is not a run directory (no config.yaml); "
            f"use 'random' or a trained run's directory"
        )
    ctx = Context(run, run.load_config(), spec, torch.device("cpu"))
    shape, params = controller_params(ctx)
    return ControllerPolicy(world_model(ctx), shape, params)


def stage_collect_steps(ctx: Context, steps: int) -> dict[str, Any]:
    """Random episodes until the store holds at least ``steps`` real env steps."""
    store = EpisodeStore(ctx.run.episodes)
    with timed(ctx, "collect"):
        while True:
            s = store.summary()
            if s["env_steps"] >= steps:
                return s
            if s["episodes"] < 10:  # estimate the episode length before collecting in bulk
                need = 10 - s["episodes"]
            else:
                mean_len = s["env_steps"] / s["episodes"]
                need = max(1, math.ceil((steps - s["env_steps"]) / max(mean_len, 1.0)))
            collect_into(ctx, s["episodes"] + need)


def write_summary(ctx: Context, name: str, data: dict[str, Any]) -> None:
    path = ctx.run.root / f"{name}.json"
    atomic_write_json(path, json.loads(json.dumps(data, default=float)))


STAGES = {
    "collect": stage_collect,
    "vision": stage_vision,
    "memory": stage_memory,
    "controller": stage_controller,
}


def collected_and_controller_steps(ctx: Context) -> int:
    """Real env steps of the CMA-ES methods: the stored episodes plus the controller's
    rollouts and evaluations."""
    steps = EpisodeStore(ctx.run.episodes).summary()["env_steps"]
    if ctx.run.has("controller/last"):
        steps += int(ctx.run.load("controller/last")["progress"].get("env_steps", 0))
    return int(steps)


def require_agent_resume(ctx: Context, ns: str) -> None:
    """An interrupted actor-critic stage continues only with --resume."""
    if ctx.resume or not ctx.run.has(f"{ns}/last"):
        return
    prog = ctx.run.load(f"{ns}/last")["progress"]
    if not prog.get("complete"):
        raise UserError(
            f"{ctx.run.root} has an interrupted {ns} stage (at iteration {prog['iteration']}, "
            f"{prog['real_env_steps']:,} real env steps); pass --resume to continue it or use "
            f"a new --run-dir"
        )


def agent_steps(ctx: Context, ns: str) -> int:
    """Real env steps of a method that keeps them in its ``ns/last`` checkpoint."""
    if ctx.run.has(f"{ns}/last"):
        return int(ctx.run.load(f"{ns}/last")["progress"]["real_env_steps"])
    return int(EpisodeStore(ctx.run.episodes).summary()["env_steps"])
