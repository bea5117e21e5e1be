"""VQ-VAE vision (van den Oord et al. 2017; the V of the enhanced
World Models scripts): the encoder's output vectors are
snapped to the nearest entries of a learned codebook; z is the quantised vectors, flattened.

- Pixels: conv 32/64/128 (k4, s2, p1, ReLU) and a last conv to ``code_dim`` channels give a
  4x4 grid of vectors (z has 16 * code_dim numbers); the decoder mirrors it to 64x64, sigmoid.
- Vectors: an MLP (inputs normalised by the data's statistics) gives ``latent_dim`` numbers,
  read as ``latent_dim / code_dim`` vectors; the decoder is the mirrored MLP.

Gradients pass the quantiser by the straight-through estimator (z_q = z_e + sg[e - z_e]). The
loss is reconstruction MSE + ||sg[z_e] - e||^2 (moves the codebook) + commitment *
||z_e - sg[e]||^2 (keeps the encoder near its codes). Code usage is tracked as an exponential
moving average of assignment frequencies; in training, codes whose usage falls below
``dead_threshold / num_codes`` are re-initialised to encoder outputs of the current batch (dead
codes otherwise never receive a gradient again). Perplexity (exp of the entropy of the batch's
code histogram: ``num_codes`` when all are used evenly, 1 on collapse) and the fraction of codes
used are reported with every loss. M models the quantised z as continuous vectors; decoding a
predicted z does not re-quantise it.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodels.models.vision.base import Loss, Rng, VisionModel
from worldmodels.models.vision.identity import LOGVAR
from worldmodels.models.vision.mlp_ae import _mlp

GRID = 4  # the pixel encoder's output grid is GRID x GRID vectors
USAGE_DECAY = 0.9  # EMA of code-assignment frequencies: about the last ten batches


class VectorQuantizer(nn.Module):
    usage: Tensor

    def __init__(self, num_codes: int, code_dim: int, dead_threshold: float = 0.05):
        super().__init__()
        self.num_codes, self.code_dim, self.dead_threshold = num_codes, code_dim, dead_threshold
        self.codebook = nn.Parameter(
            torch.empty(num_codes, code_dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        )
        self.register_buffer("usage", torch.full((num_codes,), 1.0 / num_codes))

    def nearest(self, flat: Tensor) -> Tensor:
        """Indices [N] of the nearest code to each vector of ``flat`` [N, D]."""
        with torch.no_grad():
            return self._distances(flat).argmin(dim=1)

    def _distances(self, flat: Tensor) -> Tensor:
        return (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ self.codebook.t()
            + self.codebook.pow(2).sum(1)[None, :]
        )

    def forward(self, z_e: Tensor) -> tuple[Tensor, Tensor]:
        """z_e [N, D] -> (straight-through quantised [N, D], code indices [N])."""
        idx = self.nearest(z_e.detach())
        e = self.codebook[idx]
        return z_e + (e - z_e).detach(), idx

    def losses(self, z_e: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """(codebook loss ||sg[z_e] - e||^2, commitment loss ||z_e - sg[e]||^2), means."""
        e = self.codebook[idx]
        return F.mse_loss(e, z_e.detach()), F.mse_loss(z_e, e.detach())

    @staticmethod
    def histogram(idx: Tensor, num_codes: int) -> Tensor:
        return torch.bincount(idx, minlength=num_codes).float() / max(1, idx.numel())

    def update_usage(self, idx: Tensor, z_e: Tensor) -> int:
        """Fold the batch's assignments into the usage EMA and re-initialise dead codes to
        random encoder outputs of this batch; returns how many were reset."""
        with torch.no_grad():
            freq = self.histogram(idx, self.num_codes)
            self.usage.mul_(USAGE_DECAY).add_((1 - USAGE_DECAY) * freq)
            if self.dead_threshold <= 0:
                return 0
            dead = torch.nonzero(self.usage < self.dead_threshold / self.num_codes).squeeze(1)
            if dead.numel() == 0:
                return 0
            # drawn on the CPU: the same seed resets the same codes on every device
            pick = torch.randint(0, z_e.shape[0], (dead.numel(),)).to(z_e.device)
            self.codebook.data[dead] = z_e.detach()[pick]
            self.usage[dead] = 1.0 / self.num_codes
            return int(dead.numel())


def _strided(layer: type[nn.Conv2d | nn.ConvTranspose2d], channels: list[int]) -> list[nn.Module]:
    """4x4 stride-2 ``layer``s through ``channels`` (each halves or doubles the grid), ReLU
    between them."""
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(channels)):
        mods += [nn.ReLU()] if i else []
        mods.append(layer(a, b, 4, 2, 1))
    return mods


class VQVAE(VisionModel):
    obs_mean: Tensor
    obs_std: Tensor

    def __init__(
        self,
        obs_dim: int | None = None,
        latent_dim: int = 64,
        hidden_dims: list[int] | None = None,
        num_codes: int = 128,
        code_dim: int = 4,
        commitment: float = 0.25,
        dead_threshold: float = 0.05,
    ):
        """``obs_dim`` None: 64x64 RGB frames (z has 16 * code_dim numbers); an int: vectors
        of that size (z has ``latent_dim`` numbers, a multiple of ``code_dim``)."""
        super().__init__()
        self.pixels = obs_dim is None
        self.code_dim, self.commitment = code_dim, commitment
        if obs_dim is None:
            self.latent_dim = GRID * GRID * code_dim
            self.encoder: nn.Module = nn.Sequential(
                *_strided(nn.Conv2d, [3, 32, 64, 128, code_dim])
            )
            self.decoder: nn.Module = nn.Sequential(
                nn.Conv2d(code_dim, 128, 1),
                nn.ReLU(),
                *_strided(nn.ConvTranspose2d, [128, 128, 64, 32, 3]),
                nn.Sigmoid(),
            )
            dim = 1  # the normaliser below is unused on frames
        else:
            dim = obs_dim
            if latent_dim % code_dim:
                raise ValueError(f"latent_dim {latent_dim} is not a multiple of code_dim")
            self.latent_dim = latent_dim
            hidden = list(hidden_dims or [256, 128])
            self.encoder = _mlp([dim, *hidden, latent_dim])
            self.decoder = _mlp([latent_dim, *reversed(hidden), dim])
        self.obs_dim = dim
        self.register_buffer("obs_mean", torch.zeros(dim))
        self.register_buffer("obs_std", torch.ones(dim))
        self.quantizer = VectorQuantizer(num_codes, code_dim, dead_threshold)

    def set_normaliser(self, mean: Tensor, std: Tensor) -> None:
        self.obs_mean.copy_(mean)
        self.obs_std.copy_(torch.clamp(std, min=1e-6))

    def preprocess(self, obs: Tensor) -> Tensor:
        if self.pixels:
            assert obs.dim() == 4 and obs.shape[-1] == 3, (
                f"expected [B, 64, 64, 3], got {obs.shape}"
            )
            return obs.permute(0, 3, 1, 2).float() / 255.0
        assert obs.dim() == 2 and obs.shape[-1] == self.obs_dim, (
            f"expected [B, {self.obs_dim}], got {tuple(obs.shape)}"
        )
        return (obs.float() - self.obs_mean) / self.obs_std

    def postprocess(self, x: Tensor) -> Tensor:
        if self.pixels:
            return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return x * self.obs_std + self.obs_mean

    def _vectors(self, x: Tensor) -> Tensor:
        """Model-space input -> encoder output vectors [B * groups, code_dim]."""
        h = self.encoder(x)
        if self.pixels:  # [B, D, 4, 4] -> [B, 4, 4, D]: one vector per grid cell
            h = h.permute(0, 2, 3, 1)
        return h.reshape(-1, self.code_dim)

    def _quantise(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z_e = self._vectors(x)
        z_q, idx = self.quantizer(z_e)
        return z_q.reshape(x.shape[0], self.latent_dim), z_e, idx

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, _, _ = self._quantise(x)
        return z, torch.full_like(z, LOGVAR)

    def decode(self, z: Tensor) -> Tensor:
        if self.pixels:
            z = z.reshape(-1, GRID, GRID, self.code_dim).permute(0, 3, 1, 2)
        return self.decoder(z)

    def loss(self, obs: Tensor, beta: float, kl_tolerance: float, generator: Rng = None) -> Loss:
        """Reconstruction MSE + codebook loss + commitment * commitment loss (beta and the KL
        tolerance do not apply). In training mode, code usage is updated and dead codes reset."""
        x = self.preprocess(obs)
        z, z_e, idx = self._quantise(x)
        recon = F.mse_loss(self.decode(z), x)
        codebook, commit = self.quantizer.losses(z_e, idx)
        loss = recon + codebook + self.commitment * commit
        freq = VectorQuantizer.histogram(idx, self.quantizer.num_codes)
        perplexity = torch.exp(-(freq * torch.log(freq.clamp(min=1e-10))).sum())
        resets = self.quantizer.update_usage(idx, z_e) if self.training else 0
        return loss, {
            "loss": float(loss.detach()),
            "recon_loss": float(recon.detach()),
            "codebook_loss": float(codebook.detach()),
            "commitment_loss": float(commit.detach()),
            "perplexity": float(perplexity),
            "code_usage": float((freq > 0).float().mean()),
            "dead_code_resets": float(resets),
        }
