"""MLP VAE for vector observations (as in the World Model PPO trainer): LayerNorm + ReLU
layers, inputs normalised with statistics of the collected data (stored as buffers, so a
checkpoint carries them)."""

from __future__ import annotations

import itertools

from torch import Tensor, nn

from worldmodels.models.vision.base import NormalisedVectorInput


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU()]
    return nn.Sequential(*layers)


class MlpVAE(NormalisedVectorInput):
    def __init__(self, obs_dim: int, latent_dim: int = 32, hidden_dims: list[int] | None = None):
        super().__init__()
        hidden = list(hidden_dims or [256, 128])
        self.latent_dim = latent_dim
        self._normaliser(obs_dim)
        self.encoder = _mlp([obs_dim, *hidden])
        self.fc_mu = nn.Linear(hidden[-1], latent_dim)
        self.fc_logvar = nn.Linear(hidden[-1], latent_dim)
        self.decoder = nn.Sequential(
            _mlp([latent_dim, *reversed(hidden)]), nn.Linear(hidden[0], obs_dim)
        )

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h).clamp(-10.0, 10.0)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)
