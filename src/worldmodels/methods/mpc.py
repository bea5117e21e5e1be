"""``--method mpc``: model-predictive control with a learned model, PETS-style.

Random episodes -> V -> M, then repeatedly: act in the real env with the planner
(``controllers/planners.py``) for ``mpc.episodes_per_iter`` episodes, store them like any other
episode, and continue training M on all training episodes so far -- until the store holds
``mpc.total_steps`` real env steps (the last episode is cut at the budget). Everything lives in
the run directory (episode store, ``memory/best``, ``mpc.json``), so a kill loses at most the
episode or the retraining in progress and ``--resume`` continues.

``planner_policies`` also serves ``evaluate --planner`` on a run of any method.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from worldmodels.controllers.planners import PlannerPolicy, build_planner
from worldmodels.data.collect import episode_seed
from worldmodels.data.rollout import run_episode
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import make_env
from worldmodels.errors import UserError
from worldmodels.methods import base
from worldmodels.methods.actor_critic import trained_agent
from worldmodels.methods.base import WORLD_STAGES, Context, MethodBase, PolicyFactory, register
from worldmodels.methods.stages import (
    STAGES,
    collect_into,
    split,
    timed,
    world_model,
    write_summary,
)
from worldmodels.runs import atomic_write_json
from worldmodels.training.memory import finetune_memory
from worldmodels.training.mpc import VALUE, MpcConfig, fit_value, load_value, planner_config
from worldmodels.world_model import WorldModel

CURVE_WINDOW = 5  # planned episodes averaged for each learning-curve point


def train_mpc_loop(ctx: Context) -> dict[str, Any]:
    """Plan, store, retrain M (and the critic) until ``mpc.total_steps``; ``mpc.json`` holds
    the returns and the finished iterations."""
    cfg, run = ctx.cfg, ctx.run
    mc = cfg.section(MpcConfig)
    path = run.root / "mpc.json"
    log = _read(path)
    if log["iterations"] and not log["complete"] and not ctx.resume:
        raise UserError(
            f"{run.root} has an interrupted mpc stage (after iteration {log['iterations']}); "
            f"pass --resume to continue it or use a new --run-dir"
        )
    store = EpisodeStore(run.episodes)
    held = store.summary()["env_steps"]
    if not log["iterations"] and not log["returns"] and held >= mc.total_steps:
        raise UserError(
            f"mpc.total_steps={mc.total_steps:,} leaves no step to plan: {run.episodes} "
            f"already holds {held:,} real env steps; raise mpc.total_steps (--set)"
        )
    env = make_env(cfg.env)
    writer = ctx.writer
    try:
        while (steps := store.summary()["env_steps"]) < mc.total_steps:
            world = world_model(ctx)
            value = load_value(run, world) if run.has(VALUE) else None
            planner = build_planner(
                world, planner_config(cfg), None, cfg.memory.reward_weight > 0, value
            )
            policy = PlannerPolicy(world, planner)
            t0 = time.time()
            with timed(ctx, "mpc_act"):
                for _ in range(mc.episodes_per_iter):
                    left = mc.total_steps - store.summary()["env_steps"]
                    if left <= 0:
                        break
                    index = max(store.indices(), default=-1) + 1
                    seed = episode_seed(cfg.seed, index)
                    episode = run_episode(env, ctx.spec, policy, seed, max_steps=left)
                    store.write(index, episode)
                    steps = store.summary()["env_steps"]
                    log["returns"].append(episode.meta["return"])
                    log["steps"].append(steps)
                    writer.add_scalar("mpc/episode_return", episode.meta["return"], steps)
                    atomic_write_json(path, log | {"complete": False})  # the episode's record
                    ctx.run.log_curve(steps, float(np.mean(log["returns"][-CURVE_WINDOW:])))
            log["decisions_per_s"] = policy.decisions / max(time.time() - t0, 1e-9)
            train_idx, _ = split(ctx)
            with timed(ctx, "memory"):
                finetune_memory(
                    run,
                    cfg,
                    ctx.spec,
                    world,
                    train_idx,
                    mc.retrain_epochs,
                    cfg.seed + 1_300 + log["iterations"],
                    ctx.progress,
                )
            if mc.value_epochs > 0:
                with timed(ctx, "value"):
                    fit_value(run, world, store, train_idx, cfg, log["iterations"])
            log["iterations"] += 1
            atomic_write_json(path, log | {"complete": False})
            if ctx.progress:
                print(
                    f"mpc iteration {log['iterations']}: return {log['returns'][-1]:.1f}, "
                    f"{steps:,} real env steps",
                    flush=True,
                )
            writer.flush()
    finally:
        env.close()
    log["complete"] = True
    log["real_env_steps"] = int(store.summary()["env_steps"])
    atomic_write_json(path, log)
    return log


def _read(path: Path) -> dict[str, Any]:
    if path.exists():
        data = json.loads(path.read_text())
        return {"returns": [], "steps": [], "iterations": 0, "complete": False} | data
    return {"returns": [], "steps": [], "iterations": 0, "complete": False}


def mean_return(log: dict[str, Any], last: int = 5) -> float:
    return float(np.mean(log["returns"][-last:])) if log["returns"] else float("nan")


def planner_policies(ctx: Context, world: WorldModel, kind: str | None) -> PolicyFactory:
    """``n -> policy`` planning with M (``--method mpc`` or ``evaluate --planner``); on an
    actor-critic run the actor-critic is the base policy, its critic the value at H, and the
    planner uses the V and M that actor-critic was trained with."""
    settings = planner_config(ctx.cfg)
    if kind:
        settings = dataclasses.replace(settings, kind=kind)
    base_ac = None
    ns = getattr(base.get(ctx.cfg.method), "agent", None)
    if ns and ctx.run.has(f"{ns}/best"):
        world, base_ac = trained_agent(ctx, ns, ctx.cfg.method)
    reward_trained = ctx.cfg.memory.reward_weight > 0
    value = None
    if ctx.cfg.method == MPC and ctx.run.has(VALUE):
        value = load_value(ctx.run, world)
    build_planner(world, settings, base_ac, reward_trained, value)  # bad input fails first
    return lambda n: PlannerPolicy(
        world, build_planner(world, settings, base_ac, reward_trained, value)
    )


MPC = "mpc"


@register
class Mpc(MethodBase):
    name = MPC
    summary = "plan with M in the real env, M retrained as data grows"
    sections = ("mpc", "planner")
    own_sections: ClassVar[Mapping[str, type]] = {"mpc": MpcConfig}
    artifacts = (VALUE,)
    world_stages = WORLD_STAGES

    def train(self, ctx: Context, skip: set[str]) -> None:
        if "collect" not in skip and not EpisodeStore(ctx.run.episodes).valid_indices():
            with timed(ctx, "collect"):
                collect_into(ctx, ctx.cfg.section(MpcConfig).random_episodes)
        for name in ("vision", "memory"):
            if name not in skip:
                STAGES[name](ctx)
        if "controller" not in skip:
            write_summary(ctx, "mpc_summary", train_mpc_loop(ctx))

    def policy(self, ctx: Context) -> PolicyFactory:
        return planner_policies(ctx, world_model(ctx), None)

    def real_env_steps(self, ctx: Context) -> int:
        return int(EpisodeStore(ctx.run.episodes).summary()["env_steps"])
