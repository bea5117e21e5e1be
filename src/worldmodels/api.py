"""The public Python API: open a finished run and use its agent, its world model and its
envs from Python. Also the Gymnasium entry points of ``worldmodels/Dream-v0`` and
``worldmodels/Real-v0`` (registered on ``import worldmodels``):

```python
import gymnasium as gym
import worldmodels

run = worldmodels.open_run("runs/cartpole")
agent = run.agent()                       # acts on real observations
dream = gym.make("worldmodels/Dream-v0", run_dir="runs/cartpole", tau=1.0)
real = gym.make("worldmodels/Real-v0", run_dir="runs/cartpole")  # same observations
```

Opening a run reads it: no lock is taken and nothing is written except the latent cache the
dream's start states are encoded into (``data/latents``, as every command does). It leaves
the caller's math threads as they are (``torch.set_num_threads`` is the caller's to set; the
command line sets the run's recorded count).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.config import Config
from worldmodels.dream import DreamEnv, Dreaming, DreamSingleEnv, StartStates, dream_horizon
from worldmodels.envs import EnvSpec
from worldmodels.methods import get
from worldmodels.methods.dream import dream_parts
from worldmodels.pipeline import open_run as _open
from worldmodels.rl.latent_env import LatentEnv
from worldmodels.runs import Context
from worldmodels.world_model import Imagined, WorldModel


class Agent:
    """A run's trained agent in the real env: ``act(obs, state) -> (action, state)`` on one
    raw observation of the env, carrying its recurrent state (V + M's, and the agent's own);
    ``state=None`` starts an episode."""

    def __init__(self, policy: Any):
        self._policy = policy

    def act(self, obs: Any, state: Any = None) -> tuple[Any, Any]:
        if state is None:
            state = self._policy.reset(1)
        actions, state = self._policy.act(np.asarray(obs)[None], state)
        return np.asarray(actions)[0], state


class Run:
    """A finished run directory, opened for use from Python (see the module docstring)."""

    def __init__(self, run_dir: str | Path, device: str = "cpu"):
        self._ctx: Context = _open(
            run_dir, device=device, progress=False, reads=True, writes=False, own_threads=False
        )

    @property
    def root(self) -> Path:
        return self._ctx.run.root

    @property
    def config(self) -> Config:
        return self._ctx.cfg

    @property
    def spec(self) -> EnvSpec:
        """The env's spaces as the run recorded them."""
        return self._ctx.spec

    @cached_property
    def world(self) -> WorldModel:
        """V and M (``world.encode``, ``world.step``, ``world.dream_step``, ...)."""
        return get(self.config.method).world(self._ctx)[0]

    @cached_property
    def starts(self) -> StartStates:
        """The real states dreams start from (the training episodes, encoded by V)."""
        return dream_parts(self._ctx)[1]

    def agent(self) -> Agent:
        """The agent the run's method trained (what ``worldmodels evaluate`` runs)."""
        return Agent(get(self.config.method).policy(self._ctx)(1))

    def imagine(self, obs: Any, actions: Any, tau: float = 0.0, seed: int = 0) -> Imagined:
        """M's prediction of what ``actions`` ([H] or [H, A]) do from the real observation
        ``obs``, open loop: features, rewards and done probabilities of each step (one
        sequence, batch dimension 1; ``tau = 0``: M's mean)."""
        world = self.world
        acts = torch.as_tensor(np.asarray(actions), device=world.device)
        z = world.encode(np.asarray(obs)[None])
        generator = torch.Generator().manual_seed(seed)
        return world.imagine(
            z, world.initial(1), lambda _, t: acts[t][None], len(acts), tau, generator
        )

    def dreaming(
        self,
        tau: float | None = None,
        horizon: int | None = None,
        done_mode: str | None = None,
        start: str | None = None,
        observation: str = "features",
        unknown: float | None = None,
        done_tau: float = 1.0,
        filtered: bool = False,
    ) -> Dreaming:
        """The dream's settings: the run's own (``memory.temperature``, ``dream.horizon``,
        ``dream.done_mode``, ``dream.start``: ``initial`` or ``any``; the horizon and start
        its method names, where it names them: a dreamer run's imagination horizon, from any
        replayed state) unless given; the policy sees the controller features
        (``observation="features"``) or V's decoding of them (``"decoded"``); ``unknown=q``
        ends an episode where an ensemble M disagrees more than on the q-quantile of the real
        transitions (``Dreaming.unknown``); ``done_tau`` is the temperature of the sampled
        ends (``Dreaming.done_tau``); ``filtered`` goes on from V's posterior of each step's
        predicted observation (``Dreaming.filtered``)."""
        cfg = self.config
        start = start or get(cfg.method).dream_start or cfg.dream.start
        if start not in ("initial", "any"):
            raise ValueError(f"start must be 'initial' or 'any', got {start!r}")
        return Dreaming(
            horizon
            if horizon is not None
            else dream_horizon(cfg, self.spec, get(cfg.method).dream_length(cfg)),
            tau if tau is not None else cfg.memory.temperature,
            start == "initial",
            done_mode or cfg.dream.done_mode,
            observation,
            unknown,
            done_tau,
            filtered,
        )

    def dream_env(self, **how: Any) -> DreamSingleEnv:
        """The dream as a ``gymnasium.Env`` (``tau=``, ``horizon=``, ``done_mode=``,
        ``start=``, ``observation=``, ``unknown=``, ``done_tau=``, ``filtered=``)."""
        return DreamSingleEnv(self.world, self.starts, self.dreaming(**how))

    def dream_vec_env(self, num_envs: int, **how: Any) -> DreamEnv:
        """``num_envs`` dreams stepped together (one forward pass of M per step)."""
        return DreamEnv(self.world, self.starts, num_envs, self.dreaming(**how))

    def real_env(self, observation: str = "features") -> LatentEnv:
        """The real env seen through V and M: the dream's observation and action spaces."""
        return LatentEnv(self.config.env, self.world, observation=observation)


def open_run(run_dir: str | Path, device: str = "cpu") -> Run:
    """Open a finished run directory (``worldmodels train`` made it)."""
    return Run(run_dir, device)


def make_dream(run_dir: str | Path, device: str = "cpu", **how: Any) -> DreamSingleEnv:
    """Entry point of ``gym.make("worldmodels/Dream-v0", run_dir=..., tau=, horizon=,
    done_mode=, start=, observation=, unknown=, done_tau=, filtered=)``."""
    return open_run(run_dir, device).dream_env(**how)


def make_dream_vec(
    num_envs: int = 1, run_dir: str | Path = "", device: str = "cpu", **how: Any
) -> DreamEnv:
    """Entry point of ``gym.make_vec("worldmodels/Dream-v0", num_envs, run_dir=...)``."""
    return open_run(run_dir, device).dream_vec_env(num_envs, **how)


def make_real(run_dir: str | Path, device: str = "cpu", observation: str = "features") -> LatentEnv:
    """Entry point of ``gym.make("worldmodels/Real-v0", run_dir=..., observation=)``."""
    return open_run(run_dir, device).real_env(observation)
