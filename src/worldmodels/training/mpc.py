"""``--method mpc``: model-predictive control with a learned model, PETS-style.

Random episodes -> V -> M, then repeatedly: act in the real env with the planner
(``controllers/planners.py``) for ``mpc.episodes_per_iter`` episodes, store them like any other
episode, and continue training M on all training episodes so far -- until the store holds
``mpc.total_steps`` real env steps (the last episode is cut at the budget). Everything lives in
the run directory (episode store, ``memory/best``, ``mpc.json``), so a kill loses at most the
episode or the retraining in progress and ``--resume`` continues.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from worldmodels.controllers.planners import PlannerPolicy, build_planner
from worldmodels.data.collect import episode_seed
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import make_env
from worldmodels.errors import UserError
from worldmodels.rollout import run_episode
from worldmodels.runs import atomic_write_json


def planner_config(cfg: Any) -> Any:
    """The planner settings with the run's seed folded into the planner's."""
    import dataclasses

    return dataclasses.replace(cfg.planner, seed=cfg.seed * 7919 + cfg.planner.seed)


def train_mpc_loop(ctx: Any) -> dict[str, Any]:
    from worldmodels.pipeline import split, timed, world_model
    from worldmodels.training.memory import finetune_memory

    cfg, run = ctx.cfg, ctx.run
    path = run.root / "mpc.json"
    log = _read(path)
    if log["iterations"] and not log["complete"] and not ctx.resume:
        raise UserError(
            f"{run.root} has an interrupted mpc stage (after iteration {log['iterations']}); "
            f"pass --resume to continue it or use a new --run-dir"
        )
    store = EpisodeStore(run.episodes)
    env = make_env(cfg.env)
    writer = ctx.writer
    try:
        while (steps := store.summary()["env_steps"]) < cfg.mpc.total_steps:
            world = world_model(ctx)
            planner = build_planner(world, planner_config(cfg), None, cfg.memory.reward_weight > 0)
            policy = PlannerPolicy(world, planner)
            t0 = time.time()
            with timed(ctx, "mpc_act"):
                for _ in range(cfg.mpc.episodes_per_iter):
                    left = cfg.mpc.total_steps - store.summary()["env_steps"]
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
            log["decisions_per_s"] = policy.decisions / max(time.time() - t0, 1e-9)
            train_idx, _ = split(ctx)
            with timed(ctx, "memory"):
                finetune_memory(
                    run,
                    cfg,
                    ctx.spec,
                    world,
                    train_idx,
                    cfg.mpc.retrain_epochs,
                    cfg.seed + 1_300 + log["iterations"],
                    ctx.progress,
                )
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


def _read(path: Any) -> dict[str, Any]:
    import json

    if path.exists():
        data = json.loads(path.read_text())
        return {"returns": [], "steps": [], "iterations": 0, "complete": False} | data
    return {"returns": [], "steps": [], "iterations": 0, "complete": False}


def mean_return(log: dict[str, Any], last: int = 5) -> float:
    return float(np.mean(log["returns"][-last:])) if log["returns"] else float("nan")
