"""The World Models ConvVAE: 64x64 RGB -> 4 stride-2 convs -> z (32) -> 4 deconvs -> 64x64."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from worldmodels.models.vision.base import VisionModel


class ConvVAE(VisionModel):
    """Encoder: conv 32/64/128/256 (k4, s2, ReLU, optional BatchNorm) -> 2x2x256 -> mu, logvar.
    Decoder: fc -> 1x1x1024 -> deconv 128 (k5) / 64 (k5) / 32 (k6) / 3 (k6), stride 2, sigmoid.
    """

    def __init__(self, latent_dim: int = 32, batch_norm: bool = True, image_size: int = 64):
        super().__init__()
        if image_size != 64:
            raise ValueError("ConvVAE expects 64x64 frames")
        self.latent_dim = latent_dim
        layers: list[nn.Module] = []
        channels = [3, 32, 64, 128, 256]
        for cin, cout in itertools.pairwise(channels):
            layers.append(nn.Conv2d(cin, cout, 4, stride=2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU())
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        self.fc_mu = nn.Linear(1024, latent_dim)
        self.fc_logvar = nn.Linear(1024, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, 1024)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(1024, 128, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 6, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 3, 6, stride=2),
            nn.Sigmoid(),
        )

    def preprocess(self, obs: Tensor) -> Tensor:
        """uint8 [B, 64, 64, 3] -> float [B, 3, 64, 64] in [0, 1]."""
        assert obs.dim() == 4 and obs.shape[-1] == 3, f"expected [B, 64, 64, 3], got {obs.shape}"
        return obs.permute(0, 3, 1, 2).float() / 255.0

    def postprocess(self, x: Tensor) -> Tensor:
        """Model space [B, 3, 64, 64] in [0, 1] -> uint8 frames [B, 64, 64, 3]."""
        return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h).clamp(-10.0, 10.0)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(self.fc_dec(z).view(-1, 1024, 1, 1))
