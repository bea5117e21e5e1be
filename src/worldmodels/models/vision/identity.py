"""The identity "vision" for state-vector observations: z is the observation, normalised by
statistics of the collected data (buffers, so a checkpoint carries them). With it, M learns
dynamics directly on the state (seed 003's object-state model, seed 004's setting without the
encoder) and every diagnostic in latent space is in (normalised) state space."""

from __future__ import annotations

import torch
from torch import Tensor

from worldmodels.models.vision.base import VisionModel

LOGVAR = -20.0  # a point posterior: sampling z adds nothing


class IdentityVision(VisionModel):
    obs_mean: Tensor
    obs_std: Tensor

    def __init__(self, obs_dim: int, latent_dim: int | None = None):
        super().__init__()
        self.obs_dim = obs_dim
        self.latent_dim = obs_dim
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def set_normaliser(self, mean: Tensor, std: Tensor) -> None:
        self.obs_mean.copy_(mean)
        self.obs_std.copy_(torch.clamp(std, min=1e-6))

    def preprocess(self, obs: Tensor) -> Tensor:
        assert obs.dim() == 2 and obs.shape[-1] == self.obs_dim, (
            f"expected [B, {self.obs_dim}], got {tuple(obs.shape)}"
        )
        return (obs.float() - self.obs_mean) / self.obs_std

    def postprocess(self, x: Tensor) -> Tensor:
        return x * self.obs_std + self.obs_mean

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, torch.full_like(x, LOGVAR)

    def decode(self, z: Tensor) -> Tensor:
        return z

    def loss(self, obs, beta, kl_tolerance, generator=None):  # type: ignore[no-untyped-def]
        zero = obs.new_zeros((), dtype=torch.float32)
        return zero, {"loss": 0.0}
