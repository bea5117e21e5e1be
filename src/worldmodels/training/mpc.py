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
import torch
from torch import nn

from worldmodels.controllers.planners import PlannerPolicy, build_planner
from worldmodels.data.collect import episode_seed
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import make_env
from worldmodels.errors import UserError
from worldmodels.rl.actor_critic import mlp
from worldmodels.rollout import run_episode
from worldmodels.runs import atomic_write_json, model_payload
from worldmodels.world_model import WorldModel

VALUE = "mpc_value/best"


CURVE_WINDOW = 5  # planned episodes averaged for each learning-curve point


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
            value = load_value(run, world) if run.has(VALUE) else None
            planner = build_planner(
                world, planner_config(cfg), None, cfg.memory.reward_weight > 0, value
            )
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
                    cfg.mpc.retrain_epochs,
                    cfg.seed + 1_300 + log["iterations"],
                    ctx.progress,
                )
            if cfg.mpc.value_epochs > 0:
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


def _value_net(world: WorldModel) -> nn.Module:
    return mlp(world.feature_dim, [64, 64], 1).to(world.device)


def load_value(run: Any, world: WorldModel) -> nn.Module:
    net = _value_net(world)
    net.load_state_dict(run.load(VALUE)["model"]["state_dict"])
    return net.eval()


@torch.no_grad()
def _episode_features(world: WorldModel, ep: Any) -> torch.Tensor:
    """Controller features [z_t, h_t] of every observation of an episode, M stepped along
    (a Markov M has no h: the features are z, with no step)."""
    z = world.encode(ep.observations)
    if world.memory.feature_dim == 0:
        return z
    acts = torch.as_tensor(ep.actions, device=world.device)
    state, feats = world.initial(1), []
    for t in range(len(z)):
        feats.append(world.features(z[t : t + 1], state))
        if t < len(acts):
            _, state = world.step(z[t : t + 1], acts[t : t + 1], state)
    return torch.cat(feats)


def fit_value(
    run: Any, world: WorldModel, store: EpisodeStore, indices: list[int], cfg: Any, it: int
) -> float:
    """The critic the planner adds at its horizon: V(features) regressed on discounted
    returns-to-go of every stored episode (0 after a termination; a truncated episode
    bootstraps from the previous critic), ``mpc.value_epochs`` epochs, saved as
    ``mpc_value/best``. It is the value of the data's policies (random, then planned)."""
    gamma = cfg.planner.gamma
    old = load_value(run, world) if run.has(VALUE) else None
    xs, ys = [], []
    for _, ep in store.iter_episodes(indices):
        feats = _episode_features(world, ep)
        tail = 0.0
        if not ep.terminated[-1] and old is not None:
            with torch.no_grad():
                tail = float(old(feats[-1:]).squeeze())
        g, targets = tail, np.zeros(len(ep.rewards), np.float32)
        for t in range(len(ep.rewards) - 1, -1, -1):
            g = float(ep.rewards[t]) + gamma * g * (0.0 if ep.terminated[t] else 1.0)
            targets[t] = g
        xs.append(feats[:-1])
        ys.append(torch.as_tensor(targets, device=world.device))
    x, y = torch.cat(xs), torch.cat(ys)
    torch.manual_seed(cfg.seed + 1_500 + it)
    net = _value_net(world)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(cfg.seed + 1_600 + it)
    loss = torch.zeros(())
    for _ in range(cfg.mpc.value_epochs):
        for idx in torch.randperm(len(x), generator=gen).split(256):
            loss = (net(x[idx]).squeeze(-1) - y[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    run.save(VALUE, {"model": model_payload("value_mlp", {"in_dim": world.feature_dim}, net)})
    return float(loss.detach())


def _read(path: Any) -> dict[str, Any]:
    import json

    if path.exists():
        data = json.loads(path.read_text())
        return {"returns": [], "steps": [], "iterations": 0, "complete": False} | data
    return {"returns": [], "steps": [], "iterations": 0, "complete": False}


def mean_return(log: dict[str, Any], last: int = 5) -> float:
    return float(np.mean(log["returns"][-last:])) if log["returns"] else float("nan")
