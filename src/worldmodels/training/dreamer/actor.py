"""The Dreamer agent's behaviour parts: the actor, the return scale of its advantages and the
``frozen`` context that lets gradients pass through modules that do not learn."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from worldmodels.models.rssm import inverse_cdf, mixed_softmax, mlp


def adam(params: Iterable[Any], lr: float, eps: float) -> torch.optim.Adam:
    """Adam with ``foreach``: one kernel per step for all tensors (the default only on GPUs);
    the same numbers as the per-tensor loop, ~0.9 ms less per world-model step on one CPU
    thread."""
    return torch.optim.Adam(params, lr, eps=eps, foreach=True)


@contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Parameters that pass gradients on to their inputs but get none themselves (their
    ``requires_grad`` restored on exit): no time spent on gradients no step will use."""
    params = [p for m in modules if m is not None for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


class Actor(nn.Module):
    """pi(a | s): categorical with a 1% uniform mix (discrete), or a Gaussian with a tanh mean
    and a std in [min_std, max_std] (continuous, actions clipped to [-1, 1])."""

    def __init__(
        self, feat_dim: int, action_dim: int, discrete: bool, hidden: int, layers: int,
        unimix: float = 0.01, min_std: float = 0.1, max_std: float = 1.0,
    ):  # fmt: skip
        super().__init__()
        self.discrete, self.action_dim, self.unimix = discrete, action_dim, unimix
        self.min_std, self.max_std = min_std, max_std
        self.net = mlp(feat_dim, hidden, layers, action_dim if discrete else 2 * action_dim)

    def dist(self, feat: Tensor) -> torch.distributions.Distribution:
        out = self.net(feat).float()  # bf16 under autocast: the distribution in float32
        if self.discrete:
            probs = mixed_softmax(out, self.unimix)
            return torch.distributions.Categorical(probs=probs, validate_args=False)
        mean, std = out.chunk(2, -1)
        std = (self.max_std - self.min_std) * torch.sigmoid(std + 2.0) + self.min_std
        normal = torch.distributions.Normal(torch.tanh(mean), std, validate_args=False)
        return torch.distributions.Independent(normal, 1, validate_args=False)

    def features(self, action: Tensor) -> Tensor:
        """A sampled action as the world model's input (one-hot, or clipped to [-1, 1])."""
        if self.discrete:
            classes = torch.arange(self.action_dim, device=action.device)
            return (action.long().unsqueeze(-1) == classes).float()
        return action.clamp(-1, 1)

    def act(self, feat: Tensor, mode: bool) -> Tensor:
        return self.sample(feat, mode)[0]

    def sample(self, feat: Tensor, mode: bool = False) -> tuple[Tensor, Tensor]:
        """An action (the most likely with ``mode``) and its world-model input, no gradient
        through either; a discrete draw is the inverse CDF of the mixed probabilities."""
        if self.discrete:
            onehot = inverse_cdf(mixed_softmax(self.net(feat), self.unimix), mode)
            return onehot.argmax(-1), onehot
        d = self.dist(feat)
        action = d.mean if mode else d.sample()
        return action, action.clamp(-1, 1)

    def rsample(self, feat: Tensor) -> tuple[Tensor, Tensor]:
        """A sampled action and its world-model input, differentiable in the actor's output
        (dynamics backpropagation): a straight-through one-hot (its gradient is the
        probabilities'), or the Gaussian reparameterised."""
        d = self.dist(feat)
        if not self.discrete:
            action = d.rsample()
            return action, action.clamp(-1, 1)
        probs = d.probs  # type: ignore[attr-defined]
        onehot = inverse_cdf(probs.detach())
        return onehot.argmax(-1), onehot + (probs - probs.detach())  # exactly the one-hot


class ReturnScale:
    """EMA of the 5th and 95th percentiles of the λ-returns; advantages are divided by their
    range where it exceeds 1 (small returns are not scaled up)."""

    def __init__(self, decay: float = 0.99):
        self.decay, self.lo, self.hi = decay, 0.0, 0.0
        self.started = False

    def update(self, returns: Tensor) -> float:
        probs = torch.tensor([0.05, 0.95], device=returns.device)
        q = torch.quantile(returns.detach().float().flatten(), probs)
        lo, hi = float(q[0]), float(q[1])
        if not self.started:
            self.lo, self.hi, self.started = lo, hi, True
        else:
            self.lo = self.decay * self.lo + (1 - self.decay) * lo
            self.hi = self.decay * self.hi + (1 - self.decay) * hi
        return max(1.0, self.hi - self.lo)

    def state(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "started": self.started}

    def load(self, state: dict[str, Any]) -> None:
        self.lo, self.hi, self.started = state["lo"], state["hi"], state["started"]
