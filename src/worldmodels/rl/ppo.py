"""Rollouts on any feature ``VectorEnv`` (real through V+M, or the dream) and the A2C and PPO
losses on them.

A rollout is ``[T, N]`` (steps x envs); advantages use ``returns.gae`` on its transpose
``[N, T]``. ``next_values[t]`` is V of the state step t reached: the next observation inside
an episode, the final observation (``info["final_obs"]``) where the env ended, so time-limit
truncation bootstraps correctly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from worldmodels.errors import TrainingDivergedError
from worldmodels.rl.actor_critic import ActorCritic
from worldmodels.rl.returns import gae, normalise


@dataclass
class Rollout:
    features: Tensor  # [T, N, F]
    raw: Tensor  # [T, N] (discrete) or [T, N, A]: what the policy sampled
    log_probs: Tensor  # [T, N]
    values: Tensor  # [T, N]
    rewards: Tensor  # [T, N]
    terminated: Tensor  # [T, N]
    truncated: Tensor  # [T, N]
    next_values: Tensor  # [T, N]

    def advantages(self, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
        adv, ret = gae(
            self.rewards.T,
            self.values.T,
            self.next_values.T,
            self.terminated.T,
            self.truncated.T,
            gamma,
            lam,
        )
        return adv.T, ret.T

    def __len__(self) -> int:
        return int(self.rewards.numel())


def check_finite(name: str, value: Tensor, where: str) -> None:
    if not torch.isfinite(value).all():
        raise TrainingDivergedError(
            f"{name} is not finite at {where}; training stopped, the last good checkpoint was kept"
        )


class Collector:
    """Steps a feature VectorEnv with the actor-critic, keeping the current observation."""

    def __init__(self, venv: VectorEnv | Any, ac: ActorCritic, device: torch.device, seed: int):
        self.venv, self.ac, self.device = venv, ac, device
        obs, _ = venv.reset(seed=seed)
        self.obs = obs

    def _t(self, x: np.ndarray) -> Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def collect(self, n_steps: int, where: str, record: list[Any] | None = None) -> Rollout:
        """``n_steps`` steps of every env. ``record`` receives (z, state) before each step
        from envs that expose them (the real latent env: dream start states)."""
        cols: dict[str, list[Tensor]] = {f.name: [] for f in fields(Rollout)}
        obs = self._t(self.obs)
        value = self.ac.value(obs)
        for _ in range(n_steps):
            if record is not None:
                venv: Any = self.venv
                record.append((venv.z.clone(), tuple(s.clone() for s in venv.state)))
            dist = self.ac.dist(obs)
            raw = dist.sample()
            env_action = dist.to_env(raw)
            check_finite("the action", env_action.float(), where)
            nxt, rew, term, trunc, info = self.venv.step(env_action.cpu().numpy())
            nxt_t = self._t(nxt)
            nxt_value = self.ac.value(nxt_t)
            boot = nxt_value.clone()
            if "final_obs" in info:
                rows = np.flatnonzero(info["_final_obs"])
                boot[rows] = self.ac.value(self._t(info["final_obs"][rows]))
            for name, x in (
                ("features", obs),
                ("raw", raw),
                ("log_probs", dist.log_prob(raw)),
                ("values", value),
                ("rewards", self._t(rew)),
                ("terminated", self._t(term)),
                ("truncated", self._t(trunc)),
                ("next_values", boot),
            ):
                cols[name].append(x)
            obs, value = nxt_t, nxt_value
        self.obs = obs.cpu().numpy()
        return Rollout(**{k: torch.stack(v) for k, v in cols.items()})


def cat_rollouts(parts: list[Rollout]) -> dict[str, Tensor]:
    """Flatten rollouts (possibly of different T and N) into one batch of transitions."""
    out: dict[str, list[Tensor]] = {}
    for r in parts:
        for f in fields(Rollout):
            x = getattr(r, f.name)
            out.setdefault(f.name, []).append(x.reshape(-1, *x.shape[2:]))
    return {k: torch.cat(v) for k, v in out.items()}


def ppo_update(
    ac: ActorCritic,
    opt: torch.optim.Optimizer,
    batch: dict[str, Tensor],
    epochs: int,
    minibatch: int,
    clip: float,
    value_coef: float,
    entropy_coef: float,
    max_grad_norm: float,
    where: str,
    generator: torch.Generator,
) -> dict[str, float]:
    """Clipped-surrogate PPO (Schulman et al. 2017) over ``epochs`` passes of minibatches;
    advantages normalised per minibatch, as in SB3."""
    n = len(batch["rewards"])
    stats: dict[str, list[float]] = {}
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        for s in range(0, n, minibatch):
            idx = perm[s : s + minibatch].to(batch["rewards"].device)
            f, raw = batch["features"][idx], batch["raw"][idx]
            dist = ac.dist(f)
            logp = dist.log_prob(raw)
            ratio = torch.exp(logp - batch["log_probs"][idx])
            adv = normalise(batch["advantages"][idx])
            policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
            value_loss = (ac.value(f) - batch["returns"][idx]).pow(2).mean()
            entropy = dist.entropy(raw).mean()
            loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
            for name, x in (
                ("policy_loss", policy_loss),
                ("value_loss", value_loss),
                ("entropy", entropy),
            ):
                check_finite(f"the PPO {name}", x, where)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ac.parameters(), max_grad_norm)
            opt.step()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - torch.log(ratio)).mean()
                clipped = ((ratio - 1).abs() > clip).float().mean()
            for k, v in (
                ("policy_loss", policy_loss),
                ("value_loss", value_loss),
                ("entropy", entropy),
                ("approx_kl", approx_kl),
                ("clip_fraction", clipped),
            ):
                stats.setdefault(k, []).append(float(v.detach()))
    return {k: float(np.mean(v)) for k, v in stats.items()}
