"""Run a batch of real-env episodes with one policy call per step for the whole batch.

Imports no torch: collection workers with a random policy start fast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from worldmodels.config import EnvConfig
from worldmodels.data.store import Episode
from worldmodels.envs import EnvSpec, action_to_env, make_env


class Policy(Protocol):
    def reset(self, n: int) -> Any: ...

    def act(self, obs: np.ndarray, state: Any) -> tuple[np.ndarray, Any]: ...


class RandomPolicy:
    def __init__(self, spec: EnvSpec, rng: np.random.Generator):
        self.spec, self.rng = spec, rng

    def reset(self, n: int) -> None:
        return None

    def act(self, obs: np.ndarray, state: None) -> tuple[np.ndarray, None]:
        n = obs.shape[0]
        if self.spec.action_kind == "discrete":
            return np.asarray(self.rng.integers(self.spec.action_dim, size=n), np.int64), None
        low, high = np.asarray(self.spec.action_low), np.asarray(self.spec.action_high)
        return self.rng.uniform(low, high, size=(n, len(low))).astype(np.float32), None


@dataclass
class BatchResult:
    returns: np.ndarray  # [n]
    lengths: np.ndarray  # [n]
    env_steps: int


class EnvPool:
    """Envs created once and reused across batches (env construction can be slow)."""

    def __init__(self, cfg: EnvConfig, render_mode: str | None = None):
        self.cfg, self.render_mode = cfg, render_mode
        self.envs: list[gym.Env] = []

    def take(self, n: int) -> list[gym.Env]:
        while len(self.envs) < n:
            self.envs.append(make_env(self.cfg, self.render_mode))
        return self.envs[:n]

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs = []


def run_batch(
    pool: EnvPool, spec: EnvSpec, policy: Policy, seeds: list[int], max_steps: int = 0
) -> BatchResult:
    """One episode per seed, all envs stepped together; finished envs stop stepping."""
    n = len(seeds)
    envs = pool.take(n)
    obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds, strict=True)])
    state = policy.reset(n)
    alive = np.ones(n, dtype=bool)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    env_steps = 0
    while alive.any():
        actions, state = policy.act(obs, state)
        for i in np.flatnonzero(alive):
            o, r, term, trunc, info = envs[i].step(action_to_env(actions[i], spec))
            obs[i] = o
            returns[i] += float(r)
            lengths[i] += 1
            env_steps += int(info.get("env_steps", 1))
            if term or trunc or (max_steps and lengths[i] >= max_steps):
                alive[i] = False
    return BatchResult(returns, lengths, env_steps)


def run_episode(
    env: gym.Env, spec: EnvSpec, policy: Policy, seed: int, max_steps: int = 0
) -> Episode:
    """One recorded episode (for the episode store)."""
    obs, _ = env.reset(seed=int(seed))
    state = policy.reset(1)
    observations, actions, rewards, terminated = [obs], [], [], []
    env_steps, truncated = 0, False
    while True:
        act, state = policy.act(obs[None], state)
        obs, r, term, trunc, info = env.step(action_to_env(act[0], spec))
        observations.append(obs)
        actions.append(act[0])
        rewards.append(float(r))
        terminated.append(bool(term))
        env_steps += int(info.get("env_steps", 1))
        if max_steps and len(rewards) >= max_steps and not term:
            trunc = True
        if term or trunc:
            truncated = bool(trunc and not term)
            break
    act_dtype = np.int64 if spec.action_kind == "discrete" else np.float32
    return Episode(
        observations=np.stack(observations),
        actions=np.asarray(actions, dtype=act_dtype),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminated=np.asarray(terminated, dtype=bool),
        meta={
            "env": spec.env_id,
            "seed": int(seed),
            "return": float(np.sum(rewards)),
            "truncated": truncated,
            "env_steps": env_steps,
        },
    )
