"""Controllers as flat parameter vectors (what CMA-ES searches over).

A controller maps features [z, h] to an action. ``linear`` is the paper's single layer;
``mlp`` adds tanh hidden layers. ``batched_forward`` evaluates a whole population at once:
params [P, N] and features [P, B, F] -> outputs [P, B, out] in one einsum per layer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from worldmodels.envs import EnvSpec


@dataclass(frozen=True)
class PolicyShape:
    in_dim: int
    out_dim: int
    hidden: tuple[int, ...] = ()

    @property
    def sizes(self) -> list[int]:
        return [self.in_dim, *self.hidden, self.out_dim]

    @property
    def num_params(self) -> int:
        s = self.sizes
        return sum(a * b + b for a, b in itertools.pairwise(s))


def batched_forward(shape: PolicyShape, params: Tensor, features: Tensor) -> Tensor:
    """params [P, N], features [P, B, F] -> raw outputs [P, B, out]."""
    assert params.dim() == 2 and params.shape[1] == shape.num_params, (
        f"expected params [P, {shape.num_params}], got {tuple(params.shape)}"
    )
    assert features.dim() == 3 and features.shape[-1] == shape.in_dim
    x, offset, sizes = features, 0, shape.sizes
    p = params.shape[0]
    for layer, (a, b) in enumerate(itertools.pairwise(sizes)):
        w = params[:, offset : offset + a * b].view(p, a, b)
        offset += a * b
        bias = params[:, offset : offset + b].view(p, 1, b)
        offset += b
        x = torch.einsum("pbi,pio->pbo", x, w) + bias
        if layer < len(sizes) - 2:
            x = torch.tanh(x)
    return x


def outputs_to_actions(raw: Tensor, spec: EnvSpec) -> Tensor:
    """Discrete: argmax over logits (int64). Continuous: tanh squashed into the action bounds."""
    if spec.action_kind == "discrete":
        return raw.argmax(-1)
    low = torch.tensor(spec.action_low, dtype=raw.dtype, device=raw.device)
    high = torch.tensor(spec.action_high, dtype=raw.dtype, device=raw.device)
    return low + (torch.tanh(raw) + 1.0) * 0.5 * (high - low)


def policy_shape(kind: str, feature_dim: int, spec: EnvSpec, hidden: list[int]) -> PolicyShape:
    return PolicyShape(feature_dim, spec.action_dim, tuple(hidden) if kind == "mlp" else ())


class FlatController(nn.Module):
    """One controller, stored as a flat vector so it checkpoints like any module."""

    def __init__(self, in_dim: int, out_dim: int, hidden: list[int] | None = None):
        super().__init__()
        self.shape = PolicyShape(in_dim, out_dim, tuple(hidden or ()))
        self.params = nn.Parameter(torch.zeros(self.shape.num_params), requires_grad=False)

    def set_flat(self, vector: np.ndarray | Tensor) -> None:
        self.params.data.copy_(torch.as_tensor(np.asarray(vector), dtype=torch.float32))

    def forward(self, features: Tensor) -> Tensor:
        """features [B, F] -> raw outputs [B, out]."""
        return batched_forward(self.shape, self.params.unsqueeze(0), features.unsqueeze(0))[0]
