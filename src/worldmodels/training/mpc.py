"""What ``--method mpc`` trains besides M: its config section (``MpcConfig``), the planner's
settings and the critic at its horizon (a value MLP on the features, fitted to the stored
episodes' returns-to-go)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from worldmodels.config import Config, PlannerConfig
from worldmodels.config.fields import knob
from worldmodels.data.store import EpisodeStore
from worldmodels.rl.actor_critic import mlp
from worldmodels.runs import model_payload
from worldmodels.world_model import WorldModel

VALUE = "mpc_value/best"


CURVE_WINDOW = 5  # planned episodes averaged for each learning-curve point


@dataclass
class MpcConfig:
    """``--method mpc``: random episodes -> V, M -> act with the planner in the real env,
    storing every episode and retraining M on all of them, until ``total_steps``."""

    random_episodes: int = 10
    """Random-policy episodes collected before the first model."""
    total_steps: int = knob(5_000, mutable=True)
    """Real env steps (random + planned) of the whole training."""
    episodes_per_iter: int = 1
    """Planned episodes between two retrainings of M."""
    retrain_epochs: int = knob(20, zero_ok=True)
    """Epochs of each retraining of M on all data so far."""
    value_epochs: int = knob(0, zero_ok=True)
    """> 0: after each retraining, fit a critic V([z, h]) to the stored episodes' discounted
    returns-to-go for this many epochs; the planner adds gamma^H V at its horizon (it sees
    past H, e.g. CartPole's cart drifting toward the edge). 0 = rewards within H only."""


def planner_config(cfg: Config) -> PlannerConfig:
    """The planner settings with the run's seed folded into the planner's."""
    return dataclasses.replace(cfg.planner, seed=cfg.seed * 7919 + cfg.planner.seed)


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
    run: Any, world: WorldModel, store: EpisodeStore, indices: list[int], cfg: Config, it: int
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
    for _ in range(cfg.section(MpcConfig).value_epochs):
        for idx in torch.randperm(len(x), generator=gen).split(256):
            loss = (net(x[idx]).squeeze(-1) - y[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    run.save(VALUE, {"model": model_payload("value_mlp", {"in_dim": world.feature_dim}, net)})
    return float(loss.detach())
