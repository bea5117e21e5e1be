"""The vision protocol every V implements (one level of inheritance, nothing else shared)."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor, nn


class VisionModel(nn.Module):
    latent_dim: int

    @abstractmethod
    def preprocess(self, obs: Tensor) -> Tensor:
        """Raw observations (uint8 frames / float vectors) -> the model's input space."""

    @abstractmethod
    def postprocess(self, x: Tensor) -> Tensor:
        """The model's input space -> raw observations."""

    @abstractmethod
    def encode(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Raw observations [B, *obs] -> posterior (mu, logvar), each [B, Z]."""

    @abstractmethod
    def decode(self, z: Tensor) -> Tensor:
        """z [B, Z] -> reconstruction in the model's input space."""

    @abstractmethod
    def loss(
        self,
        obs: Tensor,
        beta: float,
        kl_tolerance: float,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """The beta-VAE loss on a batch of raw observations, and its parts as floats."""
