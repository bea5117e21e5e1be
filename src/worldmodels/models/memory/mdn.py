"""Mixture density output: negative log-likelihood and temperature sampling.

Each latent dimension has its own K-component 1-D Gaussian mixture (as in the World Models
MDN-RNN). Shapes: logit_pi, mu, log_sigma are [..., Z, K]; target is [..., Z].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_SIGMA_MIN = -7.0
LOG_SIGMA_MAX = 5.0
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def mdn_nll(logit_pi: Tensor, mu: Tensor, log_sigma: Tensor, target: Tensor) -> Tensor:
    """-log sum_k pi_k N(target; mu_k, sigma_k), per element: returns [..., Z].

    Stable: mixture weights via log_softmax, the sum via logsumexp, and log sigma clamped to
    [LOG_SIGMA_MIN, LOG_SIGMA_MAX] so a collapsing component cannot produce inf.
    """
    log_sigma = log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
    log_pi = torch.log_softmax(logit_pi, dim=-1)
    z = (target.unsqueeze(-1) - mu) * torch.exp(-log_sigma)
    log_prob = -0.5 * z.pow(2) - log_sigma - _LOG_SQRT_2PI
    return -torch.logsumexp(log_pi + log_prob, dim=-1)


def mdn_sample(
    logit_pi: Tensor,
    mu: Tensor,
    log_sigma: Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample [..., Z] with temperature tau: logits / tau, sigma * sqrt(tau) (Ha & Schmidhuber)."""
    log_sigma = log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
    probs = torch.softmax(logit_pi / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    u = torch.rand(flat.shape[0], 1, generator=generator, device="cpu").to(flat.device)
    k = (
        torch.searchsorted(flat.cumsum(-1).clamp(max=1.0 - 1e-7), u)
        .clamp(max=probs.shape[-1] - 1)
        .reshape((*probs.shape[:-1], 1))
    )
    mu_k = torch.gather(mu, -1, k).squeeze(-1)
    sigma_k = torch.gather(log_sigma, -1, k).squeeze(-1).exp() * math.sqrt(temperature)
    eps = torch.randn(mu_k.shape, generator=generator, device="cpu").to(mu_k.device)
    return mu_k + sigma_k * eps


def mdn_mean(logit_pi: Tensor, mu: Tensor) -> Tensor:
    """The mixture mean, a deterministic point prediction [..., Z]."""
    return (torch.softmax(logit_pi, dim=-1) * mu).sum(-1)
