"""Defaults for an env with no preset, sized from its observation and action spaces.

The dataclass defaults are the paper's CarRacing sizes (latent 32, LSTM 256, population 64);
on a small vector env they cost minutes per stage for nothing (a default run on a
classic-control env spent 6 minutes on V, 5 on M and 15 s per CMA-ES generation). Vector
observations get CartPole-sized models instead; pixels keep the paper's.
"""

from __future__ import annotations

from typing import Any


def sized_defaults(obs_kind: str, obs_dim: int, action_dim: int) -> dict[str, Any]:
    """An overlay applied after the defaults and before any preset, for an env without one."""
    if obs_kind != "vector":
        return {}
    latent = max(4, min(32, 2 * obs_dim))
    return {
        "vision": {
            "latent_dim": latent,
            "hidden_dims": [64, 64] if obs_dim <= 32 else [256, 128],
            "lr": 1e-3,
            "epochs": 10,
            "batch_size": 128,
            "kl_tolerance": 0.0,
        },
        "memory": {"hidden_dim": 64, "epochs": 10, "seq_len": 32, "lr": 1e-3},
        "controller": {
            "population": 32 if latent + 64 <= 96 else 64,
            "rollouts": 2,
            "generations": 50,
        },
    }
