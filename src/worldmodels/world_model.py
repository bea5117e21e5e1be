"""V + M together: encode observations, advance the memory, build controller features."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from worldmodels.envs import EnvSpec
from worldmodels.models.memory import build_memory
from worldmodels.models.memory.base import MemoryModel, State
from worldmodels.models.vision import build_vision
from worldmodels.models.vision.base import VisionModel
from worldmodels.runs import RunDir, check_spec

# a policy inside imagination: (features [B, F], step t) -> actions (int64 [B] or float [B, A])
ImaginePolicy = Callable[[Tensor, int], Tensor]


class DreamStep(NamedTuple):
    z: Tensor  # [B, Z] the next latent z_{t+1}
    reward: Tensor  # [B] predicted r_t
    done_prob: Tensor  # [B] predicted P(terminated_t)
    state: Any  # memory state after the step
    uncertainty: Tensor  # [B] ensemble disagreement of z_{t+1} (0 for a single model)


class Imagined(NamedTuple):
    """A batch of imagined trajectories s_0 -a_0-> s_1 ... s_H (B sequences, H steps)."""

    features: Tensor  # [B, H+1, F] controller features [z, h] of s_0..s_H
    actions: Tensor  # [B, H] (discrete) or [B, H, A]
    rewards: Tensor  # [B, H] predicted rewards
    done_prob: Tensor  # [B, H] predicted termination probabilities
    terminated: Tensor  # [B, H] bool: step t ended the episode (threshold or sample)
    alive: Tensor  # [B, H] float: 1 where no earlier step terminated (the valid steps)
    uncertainty: Tensor  # [B, H] M's ensemble disagreement per step (0 for a single model)


@dataclass
class WorldModel:
    vision: VisionModel
    memory: MemoryModel
    spec: EnvSpec
    device: torch.device

    @property
    def feature_dim(self) -> int:
        """Size of the controller input [z, h]."""
        return self.vision.latent_dim + self.memory.feature_dim

    @torch.no_grad()
    def encode(self, obs: np.ndarray) -> Tensor:
        """Observations [B, *obs] -> z = the posterior mean [B, Z]."""
        obs = np.require(obs, requirements=["W"])  # env frames may be read-only views
        mu, _ = self.vision.encode(torch.as_tensor(obs, device=self.device))
        return mu

    @torch.no_grad()
    def observe(self, obs: np.ndarray, state: State) -> Tensor:
        """The observations an episode reached after M's step to ``state`` -> z [B, Z]: what
        ``encode`` gives at an episode's first step (``state`` is ``initial``), and for the
        RSSM the posterior of its prediction, so real steps have the features dream steps
        have (``dream.py``) and not those of a first step."""
        obs = np.require(obs, requirements=["W"])
        return self.vision.observe(torch.as_tensor(obs, device=self.device), state)

    @torch.no_grad()
    def refilter(self, z: Tensor, state: State) -> Tensor:
        """M's predicted z [B, Z] as a real step would see it: V's posterior (``observe``) of
        V's decoding of z, the observation the model predicts."""
        return self.vision.observe(self.decoded(z), state)

    @torch.no_grad()
    def decoded(self, z: Tensor) -> Tensor:
        """z [B, Z] -> the raw observations V decodes it to (vectors, or uint8 frames)."""
        return self.vision.postprocess(self.vision.decode(z))

    def action_features(self, actions: Tensor) -> Tensor:
        """int64 [B] -> one-hot [B, A]; continuous [B, A] unchanged."""
        if self.spec.action_kind == "discrete":
            return torch.nn.functional.one_hot(actions.long(), self.spec.action_dim).float()
        return actions.float()

    def initial(self, batch: int) -> State:
        return self.memory.initial(batch, self.device)

    @torch.no_grad()
    def step(self, z: Tensor, actions: Tensor, state: State) -> tuple[Any, State]:
        return self.memory.step(z, self.action_features(actions), state)

    def features(self, z: Tensor, state: Any) -> Tensor:
        return torch.cat([z, self.memory.hidden(state)], dim=-1)

    def dream_step(
        self,
        z: Tensor,
        actions: Tensor,
        state: Any,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> DreamStep:
        """One step inside the model, for a whole batch in one forward pass: M predicts
        z_{t+1} (sampled at temperature tau; its mean at tau = 0), r_t and done_t."""
        out, state = self.memory.step(z, self.action_features(actions), state)
        z_next = self.memory.sample_next(out, temperature, generator)
        reward, done_logit = self.memory.reward_done(out, z_next)
        spread = self.memory.uncertainty(out)
        if spread is None:
            spread = torch.zeros_like(reward)
        return DreamStep(z_next, reward, torch.sigmoid(done_logit), state, spread)

    def imagine(
        self,
        z: Tensor,
        state: Any,
        policy: ImaginePolicy,
        horizon: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        done_mode: str = "threshold",
        grad: bool = False,
        until_all_done: bool = False,
    ) -> Imagined:
        """Roll ``policy`` forward ``horizon`` steps inside the model from (z_0 [B, Z], state).

        Every look-ahead in the toolkit goes through here: the dream env, CMA-ES in the
        dream, the actor-critics' imagined experience and the planners. A step that the done
        head ends (p > 0.5, or a Bernoulli draw with ``done_mode="sample"``) marks the rest
        of that sequence not alive; the batch keeps its shape. ``until_all_done`` stops
        early (fewer than ``horizon`` steps) once every sequence has ended.
        """
        if horizon < 1:
            raise ValueError(f"imagination horizon must be >= 1, got {horizon}")
        with torch.set_grad_enabled(grad):
            feats, acts, rewards, probs, terms = [self.features(z, state)], [], [], [], []
            spreads = []
            for t in range(horizon):
                action = policy(feats[-1], t)
                step = self.dream_step(z, action, state, temperature, generator)
                z, state = step.z, step.state
                if done_mode == "sample":
                    u = torch.rand(step.done_prob.shape, generator=generator)
                    terminated = u.to(step.done_prob.device) < step.done_prob
                else:
                    terminated = step.done_prob > 0.5
                feats.append(self.features(z, state))
                acts.append(action)
                rewards.append(step.reward)
                probs.append(step.done_prob)
                terms.append(terminated)
                spreads.append(step.uncertainty)
                if until_all_done and torch.stack(terms).any(0).all():
                    break
            term = torch.stack(terms, 1)
            ended_before = torch.cumsum(term.float(), 1) - term.float()
            return Imagined(
                torch.stack(feats, 1),
                torch.stack(acts, 1),
                torch.stack(rewards, 1),
                torch.stack(probs, 1),
                term,
                (ended_before == 0).float(),
                torch.stack(spreads, 1),
            )


def _load_best(run: RunDir, spec: EnvSpec, device: torch.device, stage: str, build: Any) -> Any:
    """``stage/best``'s model, built by ``build(name, kwargs)``, on ``device``, in eval mode."""
    payload = run.load(f"{stage}/best")
    check_spec(payload, spec, str(run.ckpt_path(f"{stage}/best")))
    model = build(payload["model"]["name"], payload["model"]["kwargs"])
    model.load_state_dict(payload["model"]["state_dict"])
    return model.to(device).eval()


def load_vision(run: RunDir, spec: EnvSpec, device: torch.device) -> VisionModel:
    return _load_best(run, spec, device, "vision", build_vision)


def load_memory(run: RunDir, spec: EnvSpec, device: torch.device) -> MemoryModel:
    return _load_best(run, spec, device, "memory", build_memory)


def load_world_model(run: RunDir, spec: EnvSpec, device: torch.device) -> WorldModel:
    return WorldModel(load_vision(run, spec, device), load_memory(run, spec, device), spec, device)
