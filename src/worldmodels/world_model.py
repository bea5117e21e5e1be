"""V + M together: encode observations, advance the memory, build controller features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from worldmodels.envs import EnvSpec
from worldmodels.models.memory import build_memory
from worldmodels.models.memory.base import MemoryModel
from worldmodels.models.memory.mdn_rnn import MemoryOutput, State
from worldmodels.models.vision import build_vision
from worldmodels.models.vision.base import VisionModel
from worldmodels.runs import RunDir, check_spec


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

    def action_features(self, actions: Tensor) -> Tensor:
        """int64 [B] -> one-hot [B, A]; continuous [B, A] unchanged."""
        if self.spec.action_kind == "discrete":
            return torch.nn.functional.one_hot(actions.long(), self.spec.action_dim).float()
        return actions.float()

    def initial(self, batch: int) -> State:
        return self.memory.initial(batch, self.device)

    @torch.no_grad()
    def step(self, z: Tensor, actions: Tensor, state: State) -> tuple[MemoryOutput, State]:
        return self.memory.step(z, self.action_features(actions), state)

    @staticmethod
    def features(z: Tensor, state: State) -> Tensor:
        return torch.cat([z, state[0]], dim=-1)


def load_vision(run: RunDir, spec: EnvSpec, device: torch.device) -> VisionModel:
    payload = run.load("vision/best")
    check_spec(payload, spec, str(run.ckpt_path("vision/best")))
    model = build_vision(payload["model"]["name"], payload["model"]["kwargs"])
    model.load_state_dict(payload["model"]["state_dict"])
    return model.to(device).eval()


def load_memory(run: RunDir, spec: EnvSpec, device: torch.device) -> MemoryModel:
    payload = run.load("memory/best")
    check_spec(payload, spec, str(run.ckpt_path("memory/best")))
    model = build_memory(payload["model"]["name"], payload["model"]["kwargs"])
    model.load_state_dict(payload["model"]["state_dict"])
    return model.to(device).eval()


def load_world_model(run: RunDir, spec: EnvSpec, device: torch.device) -> WorldModel:
    return WorldModel(load_vision(run, spec, device), load_memory(run, spec, device), spec, device)
