"""Policies that act in a batch of real envs: random, and V + M + C (the agent).

A policy has ``reset(n) -> state`` and ``act(obs [n, *obs], state) -> (actions [n], state)``;
the recurrent state is passed in and out, never hidden in the policy.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from worldmodels.controllers.linear import PolicyShape, batched_forward, outputs_to_actions
from worldmodels.envs import EnvSpec
from worldmodels.world_model import WorldModel


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
            return self.rng.integers(self.spec.action_dim, size=n).astype(np.int64), None
        low, high = np.asarray(self.spec.action_low), np.asarray(self.spec.action_high)
        return self.rng.uniform(low, high, size=(n, len(low))).astype(np.float32), None


class ControllerPolicy:
    """V + M + C for a population: params [P, N]; env i is driven by candidate i // repeat."""

    def __init__(
        self,
        world: WorldModel,
        shape: PolicyShape,
        params: np.ndarray | torch.Tensor,
        repeat: int = 1,
    ):
        self.world, self.shape, self.repeat = world, shape, repeat
        self.params = torch.as_tensor(np.asarray(params), dtype=torch.float32, device=world.device)
        if self.params.dim() == 1:
            self.params = self.params.unsqueeze(0)

    def reset(self, n: int):
        assert n == self.params.shape[0] * self.repeat, "batch must be population x repeat"
        return self.world.initial(n)

    @torch.no_grad()
    def act(self, obs: np.ndarray, state):
        z = self.world.encode(obs)
        feats = self.world.features(z, state)
        p = self.params.shape[0]
        raw = batched_forward(self.shape, self.params, feats.view(p, self.repeat, -1))
        actions = outputs_to_actions(raw, self.world.spec)
        actions = actions.reshape(p * self.repeat, *actions.shape[2:])
        if not torch.isfinite(actions.float()).all():
            raise FloatingPointError("controller produced a non-finite action")
        _, state = self.world.step(z, actions, state)
        return actions.cpu().numpy(), state
