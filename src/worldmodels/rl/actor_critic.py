"""The actor-critic on the controller features [z, h] (the "improved controller" of the
enhanced World Models scripts).

Policy: MLP [in -> 128 (LayerNorm, ReLU) -> 64 (LayerNorm, ReLU) -> actions]; value: a
separate MLP of the same shape. Discrete actions: a categorical over logits. Continuous
actions: a tanh-squashed Gaussian, scaled to the action bounds, whose log-probability carries
the change-of-variables correction  log pi(a) = log N(u; mu, sigma) - sum log(1 - tanh(u)^2)
- sum log((high - low) / 2). The pre-squash sample u is what rollouts store (no atanh).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Normal

from worldmodels.envs import EnvSpec

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(in_dim: int, hidden: list[int], out_dim: int, layer_norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), *([nn.LayerNorm(h)] if layer_norm else []), nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class ActionDist:
    """A batch of action distributions; ``raw`` actions are what rollouts store."""

    def __init__(self, spec: EnvSpec, params: Tensor, log_std: Tensor | None):
        self.spec = spec
        if spec.action_kind == "discrete":
            self.cat: Categorical | None = Categorical(logits=params)
        else:
            self.cat = None
            assert log_std is not None
            self.normal = Normal(params, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp())
            low = torch.tensor(spec.action_low, dtype=params.dtype, device=params.device)
            high = torch.tensor(spec.action_high, dtype=params.dtype, device=params.device)
            self.low, self.half = low, (high - low) / 2

    def sample(self) -> Tensor:
        return self.cat.sample() if self.cat is not None else self.normal.sample()

    def mode(self) -> Tensor:
        return self.cat.probs.argmax(-1) if self.cat is not None else self.normal.mean

    def log_prob(self, raw: Tensor) -> Tensor:
        if self.cat is not None:
            return self.cat.log_prob(raw)
        squash = 2.0 * (math.log(2.0) - raw - nn.functional.softplus(-2.0 * raw))  # log(1-tanh^2)
        return self.normal.log_prob(raw).sum(-1) - squash.sum(-1) - torch.log(self.half).sum()

    def entropy(self, raw: Tensor | None = None) -> Tensor:
        """The categorical's entropy; for the squashed Gaussian the entropy of the Gaussian
        before the squash (``raw`` is not used). The sample estimate -log pi(a_old) it replaces
        has a gradient of zero mean in log sigma, so the bonus did not keep the policy wide."""
        if self.cat is not None:
            return self.cat.entropy()
        return self.normal.entropy().sum(-1)

    def to_env(self, raw: Tensor) -> Tensor:
        """Env actions: the index (discrete) or tanh(u) scaled into [low, high]."""
        if self.cat is not None:
            return raw
        return self.low + (torch.tanh(raw) + 1.0) * self.half


class ActorCritic(nn.Module):
    def __init__(
        self,
        in_dim: int,
        spec: EnvSpec,
        hidden: list[int] | None = None,
        layer_norm: bool = True,
        init_log_std: float = -0.5,
    ):
        super().__init__()
        hidden = list(hidden or [128, 64])
        self.spec = spec
        self.in_dim = in_dim
        self.policy = mlp(in_dim, hidden, spec.action_dim, layer_norm)
        self.value_net = mlp(in_dim, hidden, 1, layer_norm)
        if spec.action_kind == "continuous":
            self.log_std = nn.Parameter(torch.full((spec.action_dim,), init_log_std))
        # small last policy layer: near-uniform first actions (as in SB3 / CleanRL)
        last = self.policy[-1]
        assert isinstance(last, nn.Linear)
        nn.init.orthogonal_(last.weight, 0.01)
        nn.init.zeros_(last.bias)

    def dist(self, features: Tensor) -> ActionDist:
        log_std = getattr(self, "log_std", None)
        return ActionDist(self.spec, self.policy(features), log_std)

    def value(self, features: Tensor) -> Tensor:
        return self.value_net(features).squeeze(-1)
