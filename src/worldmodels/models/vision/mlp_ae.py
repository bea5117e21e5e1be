"""The joint latent-MLP world model's encoder and decoder: a deterministic MLP autoencoder for
vector observations.

Encoder obs -> 256 -> 256 -> z (ReLU), decoder z -> 256 -> 256 -> obs; inputs normalised with
statistics of the collected data (buffers, so a checkpoint carries them). The posterior is a
point (log-variance -20, as for the identity V), so sampling z adds nothing and the loss is the
reconstruction error alone. Trained on its own by ``train-vision`` or together with M by
``memory.joint`` (one model with three losses, as the joint latent-MLP world model trains).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldmodels.models.vision.base import Loss, NormalisedVectorInput, Rng
from worldmodels.models.vision.identity import LOGVAR


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MlpAE(NormalisedVectorInput):
    def __init__(self, obs_dim: int, latent_dim: int = 128, hidden_dims: list[int] | None = None):
        super().__init__()
        hidden = list(hidden_dims or [256, 256])
        self.latent_dim = latent_dim
        self._normaliser(obs_dim)
        self.encoder = _mlp([obs_dim, *hidden, latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden), obs_dim])

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encoder(x)
        return z, torch.full_like(z, LOGVAR)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def loss(self, obs: Tensor, beta: float, kl_tolerance: float, generator: Rng = None) -> Loss:
        """Mean squared reconstruction error in normalised units (the joint model's recon loss)."""
        x = self.preprocess(obs)
        recon = self.decode(self.encoder(x))
        loss = (recon - x).pow(2).mean()
        return loss, {"recon_loss": float(loss.detach()), "loss": float(loss.detach())}
