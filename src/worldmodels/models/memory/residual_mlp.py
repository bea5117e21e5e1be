"""A deterministic residual MLP dynamics model (the Pong object-state model's fix for
compounding multi-step error).

next z = z + scale * delta(z, a), delta from an MLP with LayerNorm + ReLU and residual hidden
blocks; a reward head and a done head on the same trunk. Training modes: ``markov.py``;
ensembles: ``memory.ensemble`` (``ensemble.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from worldmodels.models.memory.markov import MarkovDynamics


class ResidualMLP(MarkovDynamics):
    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        hidden_dim: int = 256,
        blocks: int = 2,
        scale: float = 0.1,
        **modes: Any,
    ):
        super().__init__(latent_dim, action_dim, **modes)
        self.scale = scale
        self.inp = nn.Sequential(
            nn.Linear(latent_dim + action_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU()
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU())
            for _ in range(blocks)
        )
        self.delta = nn.Linear(hidden_dim, latent_dim)
        self.reward_head = nn.Linear(hidden_dim, 1)
        self.done_head = nn.Linear(hidden_dim, 1)

    def transition(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.inp(torch.cat([z, a], -1))
        for block in self.blocks:
            x = x + block(x)
        return (
            z + self.scale * self.delta(x),
            self.reward_head(x).squeeze(-1),
            self.done_head(x).squeeze(-1),
        )
