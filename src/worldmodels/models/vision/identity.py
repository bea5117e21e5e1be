"""The identity "vision" for state-vector observations: z is the observation, normalised by
statistics of the collected data (buffers, so a checkpoint carries them). With it, M learns
dynamics directly on the state (the Pong object-state dynamics model; the joint latent-MLP
world model without its encoder) and every diagnostic in latent space is in (normalised) state
space."""

from __future__ import annotations

import torch
from torch import Tensor

from worldmodels.models.vision.base import Loss, NormalisedVectorInput, Rng

LOGVAR = -20.0  # a point posterior: sampling z adds nothing


class IdentityVision(NormalisedVectorInput):
    def __init__(self, obs_dim: int, latent_dim: int | None = None):
        super().__init__()
        self.latent_dim = obs_dim
        self._normaliser(obs_dim)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, torch.full_like(x, LOGVAR)

    def decode(self, z: Tensor) -> Tensor:
        return z

    def loss(self, obs: Tensor, beta: float, kl_tolerance: float, generator: Rng = None) -> Loss:
        zero = obs.new_zeros((), dtype=torch.float32)
        return zero, {"loss": 0.0}
