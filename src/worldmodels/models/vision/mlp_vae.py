"""MLP VAE for vector observations (seed 002): LayerNorm + ReLU layers, inputs normalised with
statistics of the collected data (stored as buffers, so a checkpoint carries them)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from worldmodels.models.vision.base import VisionModel


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU()]
    return nn.Sequential(*layers)


class MlpVAE(VisionModel):
    obs_mean: Tensor
    obs_std: Tensor

    def __init__(self, obs_dim: int, latent_dim: int = 32, hidden_dims: list[int] | None = None):
        super().__init__()
        hidden = list(hidden_dims or [256, 128])
        self.latent_dim = latent_dim
        self.obs_dim = obs_dim
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.encoder = _mlp([obs_dim, *hidden])
        self.fc_mu = nn.Linear(hidden[-1], latent_dim)
        self.fc_logvar = nn.Linear(hidden[-1], latent_dim)
        self.decoder = nn.Sequential(
            _mlp([latent_dim, *reversed(hidden)]), nn.Linear(hidden[0], obs_dim)
        )

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
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h).clamp(-10.0, 10.0)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)
