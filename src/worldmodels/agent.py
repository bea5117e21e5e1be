"""The agent: V + M + C acting in a batch of real envs (see ``rollout.Policy``).

A policy has ``reset(n) -> state`` and ``act(obs [n, *obs], state) -> (actions [n], state)``;
the recurrent state is passed in and out, never hidden in the policy.
"""

from __future__ import annotations

import numpy as np
import torch

from worldmodels.controllers.linear import PolicyShape, batched_forward, outputs_to_actions
from worldmodels.rl.actor_critic import ActorCritic
from worldmodels.world_model import WorldModel


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
        z = self.world.observe(obs, state)
        feats = self.world.features(z, state)
        p = self.params.shape[0]
        raw = batched_forward(self.shape, self.params, feats.view(p, self.repeat, -1))
        actions = outputs_to_actions(raw, self.world.spec)
        actions = actions.reshape(p * self.repeat, *actions.shape[2:])
        if not torch.isfinite(actions.float()).all():
            raise FloatingPointError("controller produced a non-finite action")
        _, state = self.world.step(z, actions, state)
        return actions.cpu().numpy(), state


class ActorCriticPolicy:
    """V + M + an actor-critic acting in real envs: the distribution's mode (deterministic)
    or a sample."""

    def __init__(self, world: WorldModel, ac: ActorCritic, deterministic: bool = True):
        self.world, self.ac, self.deterministic = world, ac, deterministic

    def reset(self, n: int):
        return self.world.initial(n)

    @torch.no_grad()
    def act(self, obs: np.ndarray, state):
        z = self.world.observe(obs, state)
        dist = self.ac.dist(self.world.features(z, state))
        actions = dist.to_env(dist.mode() if self.deterministic else dist.sample())
        if not torch.isfinite(actions.float()).all():
            raise FloatingPointError("the actor-critic produced a non-finite action")
        _, state = self.world.step(z, actions, state)
        return actions.cpu().numpy(), state
