"""The joint latent-MLP world model's dynamics: an MLP on [z_t, a_t] predicts z_{t+1}
directly, and the reward and done heads read the *predicted* next latent
(reward_head(z_{t+1}), done_head(z_{t+1})).

With ``vision.kind=mlp_ae`` (its encoder and decoder) and ``memory.joint=true`` the whole model
trains with one loss: reconstruction + dynamics (next-latent target detached) + reward + done.
Training modes: ``markov.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from worldmodels.models.memory.markov import MarkovDynamics


def _head(latent_dim: int, hidden_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))


class LatentMLP(MarkovDynamics):
    def __init__(self, latent_dim: int, action_dim: int, hidden_dim: int = 256, **modes: Any):
        super().__init__(latent_dim, action_dim, **modes)
        self.dynamics = nn.Sequential(
            nn.Linear(latent_dim + action_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, latent_dim),
        )
        self.reward_head = _head(latent_dim, hidden_dim)
        self.done_head = _head(latent_dim, hidden_dim)

    def transition(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        nxt = self.dynamics(torch.cat([z, a], -1))
        return nxt, self.reward_head(nxt).squeeze(-1), self.done_head(nxt).squeeze(-1)
