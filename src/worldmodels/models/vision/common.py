"""The beta-VAE objective shared by every VAE: reconstruction + beta * max(KL, free nats)."""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the latent dimension: shape [B]."""
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


def beta_vae_loss(
    recon_error: Tensor, mu: Tensor, logvar: Tensor, beta: float, kl_tolerance: float
) -> tuple[Tensor, dict[str, float]]:
    """``recon_error`` is the per-sample summed squared error [B].

    The KL term is clamped from below at ``kl_tolerance * latent_dim`` nats (the paper's
    KL tolerance): below that the encoder is free to use the latent without penalty.
    """
    kl = gaussian_kl(mu, logvar).mean()
    floor = kl_tolerance * mu.shape[-1]
    kl_term = torch.clamp(kl, min=floor)
    recon = recon_error.mean()
    loss = recon + beta * kl_term
    return loss, {
        "recon_loss": float(recon.detach()),
        "kl": float(kl.detach()),
        "loss": float(loss.detach()),
    }


def reparameterise(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    # drawn on the CPU then moved: the same seed gives the same noise on every device
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
    return mu + eps * torch.exp(0.5 * logvar)
