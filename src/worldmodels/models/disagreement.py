"""Plan2Explore's ensemble disagreement (Sekar et al. 2020; DreamerV3's ``expl_behavior``):
K small MLPs each predict the next stochastic state from the model state and the action; where
they disagree, the world model has seen too little, and the spread is an intrinsic reward that
sends the policy there. The K heads run as one batched matmul per layer (no loop over heads).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class DisagreementEnsemble(nn.Module):
    def __init__(self, inp: int, out: int, hidden: int, heads: int = 8):
        super().__init__()
        self.kwargs = {"inp": inp, "out": out, "hidden": hidden, "heads": heads}

        def layer(i: int, o: int) -> tuple[nn.Parameter, nn.Parameter]:
            bound = 1.0 / math.sqrt(i)  # nn.Linear's default, per head
            w = nn.Parameter(torch.empty(heads, i, o).uniform_(-bound, bound))
            return w, nn.Parameter(torch.empty(heads, 1, o).uniform_(-bound, bound))

        self.w1, self.b1 = layer(inp, hidden)
        self.w2, self.b2 = layer(hidden, out)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: Tensor) -> Tensor:
        """[N, inp] -> every head's prediction [K, N, out]."""
        h = torch.baddbmm(self.b1, x.unsqueeze(0).expand(self.w1.shape[0], -1, -1), self.w1)
        return torch.baddbmm(self.b2, nn.functional.silu(self.norm(h)), self.w2)

    def loss(self, x: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        """Each head's MSE to the target [N, out], weighted per row [N], summed over heads."""
        err = (self(x) - target.unsqueeze(0)).pow(2).mean(-1)  # [K, N]
        return (err * weight).sum(0).mean()

    @torch.no_grad()
    def disagreement(self, x: Tensor) -> Tensor:
        """[..., inp] -> the heads' standard deviation, averaged over outputs [...]."""
        flat = x.reshape(-1, x.shape[-1])
        return self(flat).std(0).mean(-1).reshape(x.shape[:-1])
