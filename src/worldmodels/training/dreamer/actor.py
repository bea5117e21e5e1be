"""The Dreamer agent's behaviour parts: the actor, the return scale of its advantages, its
entropy bonus (fixed, or held above a floor by a learned coefficient) and the ``frozen``
context that lets gradients pass through modules that do not learn."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from worldmodels.models.rssm import inverse_cdf, mixed_softmax, mlp
from worldmodels.training.dreamer.config import DreamerConfig


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

    def entropy_range(self) -> tuple[float, float]:
        """The smallest and largest entropy of pi (discrete: 0 and ln |A|; continuous: the
        Gaussian's at min_std and at max_std in every action dimension)."""
        if self.discrete:
            return 0.0, math.log(self.action_dim)
        base = 0.5 * math.log(2 * math.pi * math.e)
        return tuple(  # type: ignore[return-value]
            self.action_dim * (base + math.log(std)) for std in (self.min_std, self.max_std)
        )

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


class EntropyBonus:
    """The actor's entropy bonus: ``dreamer.entropy``, or with ``dreamer.entropy_floor`` a
    learned log-coefficient ``log_eta`` (SAC's temperature) that grows while the actor's
    imagined entropy is under the floor and shrinks back, never below ``entropy``, once it is
    above; ``opt`` is its optimiser (None without a floor)."""

    def __init__(self, dc: DreamerConfig, actor: Actor, device: torch.device):
        self.dc, self.actor = dc, actor
        self.log_eta: Tensor | None = None
        self.opt: torch.optim.Adam | None = None
        self.target = 0.0
        """The floor's entropy: ``entropy_floor`` of the way up the actor's range."""
        if dc.entropy_floor > 0:
            lo, hi = actor.entropy_range()
            self.target = lo + dc.entropy_floor * (hi - lo)
            self.log_eta = torch.tensor(math.log(dc.entropy), device=device, requires_grad=True)
            self.opt = adam([self.log_eta], dc.entropy_lr, 1e-8)

    def coef(self) -> float:
        """The bonus: ``entropy``, or its learned value (``entropy_floor``)."""
        return self.dc.entropy if self.log_eta is None else float(self.log_eta.detach().exp())

    def floor(self, env_steps: int) -> float:
        """The entropy the floor holds after ``env_steps`` real steps: ``target``, lowered
        linearly to the range's bottom over ``entropy_floor_steps`` (when set)."""
        if self.dc.entropy_floor_steps <= 0:
            return self.target
        lo, _ = self.actor.entropy_range()
        left = max(0.0, 1.0 - env_steps / self.dc.entropy_floor_steps)
        return lo + left * (self.target - lo)

    def step(self, entropy: Tensor, env_steps: int = 0) -> None:
        """SAC's temperature step: d loss / d log_eta = entropy - floor, so the bonus grows
        while the entropy is under the floor; projected back to at least ``entropy``."""
        if self.log_eta is None or self.opt is None:
            return
        self.opt.zero_grad(set_to_none=True)
        target = self.floor(env_steps)
        (self.log_eta * (entropy.detach().float() - target)).backward()
        self.opt.step()
        with torch.no_grad():
            self.log_eta.clamp_(min=math.log(self.dc.entropy))

    def state(self) -> dict[str, Any]:
        """The learned coefficient, for ``dreamer/last`` (empty without a floor)."""
        return {"log_eta": self.log_eta.detach().clone()} if self.log_eta is not None else {}

    def load(self, payload: dict[str, Any]) -> None:
        if self.log_eta is not None:
            with torch.no_grad():
                self.log_eta.copy_(payload["log_eta"])
