"""The vision protocol every V implements, and the input normaliser vector models share."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from worldmodels.models.vision.common import beta_vae_loss, reparameterise

Rng = torch.Generator | None
"""The generator a V's sampling draws from (None: torch's global one)."""
Loss = tuple[Tensor, dict[str, float]]
"""A training loss and its parts as floats."""


class VisionModel(nn.Module):
    latent_dim: int

    @abstractmethod
    def preprocess(self, obs: Tensor) -> Tensor:
        """Raw observations (uint8 frames / float vectors) -> the model's input space."""

    @abstractmethod
    def postprocess(self, x: Tensor) -> Tensor:
        """The model's input space -> raw observations."""

    @abstractmethod
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Model-space input -> posterior (mu, logvar), each [B, Z]."""

    @abstractmethod
    def decode(self, z: Tensor) -> Tensor:
        """z [B, Z] -> reconstruction in the model's input space."""

    def encode(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Raw observations [B, *obs] -> posterior (mu, logvar), each [B, Z]."""
        return self.posterior(self.preprocess(obs))

    def observe(self, obs: Tensor, memory_state: Any) -> Tensor:
        """The latent z [B, Z] of raw observations reached by M's last step, whose state is
        ``memory_state``: the posterior mean. A V that encodes each frame on its own (every V
        but the RSSM's, whose posterior reads the step's prediction) ignores the state."""
        return self.encode(obs)[0]

    @torch.no_grad()
    def encode_episode(
        self, observations: Any, actions: Any, device: torch.device, batch_size: int = 256
    ) -> tuple[np.ndarray, np.ndarray]:
        """An episode's observations [T+1, *obs] -> (mu, logvar) [T+1, Z], frame by frame
        (``actions`` are for Vs whose encoding depends on the history, like the RSSM's)."""
        mus, logvars = [], []
        for b in range(0, len(observations), batch_size):
            obs = torch.as_tensor(np.asarray(observations[b : b + batch_size]), device=device)
            mu, logvar = self.encode(obs)
            mus.append(mu.cpu().numpy())
            logvars.append(logvar.cpu().numpy())
        return np.concatenate(mus), np.concatenate(logvars)

    def loss(self, obs: Tensor, beta: float, kl_tolerance: float, generator: Rng = None) -> Loss:
        """The beta-VAE loss on a batch of raw observations (summed squared error in model
        space + beta * max(KL, free nats)), and its parts as floats."""
        x = self.preprocess(obs)
        mu, logvar = self.posterior(x)
        recon = self.decode(reparameterise(mu, logvar, generator))
        err = (recon - x).pow(2).flatten(1).sum(dim=1)
        return beta_vae_loss(err, mu, logvar, beta, kl_tolerance)


class NormalisedVectorInput(VisionModel):
    """A V on 1-D vector observations, normalised with the collected data's statistics (kept as
    buffers, so a checkpoint carries them)."""

    obs_mean: Tensor
    obs_std: Tensor
    obs_dim: int

    def _normaliser(self, obs_dim: int) -> None:
        self.obs_dim = obs_dim
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
