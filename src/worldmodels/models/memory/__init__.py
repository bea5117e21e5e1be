"""Memory models (M): predict z_{t+1}, r_t and done_t from (z_t, a_t, state)."""

from __future__ import annotations

from typing import Any

from worldmodels.models.memory.base import MemoryModel
from worldmodels.models.memory.ensemble import Ensemble
from worldmodels.models.memory.latent_mlp import LatentMLP
from worldmodels.models.memory.mdn_rnn import MDNRNN
from worldmodels.models.memory.residual_mlp import ResidualMLP
from worldmodels.models.memory.transformer import TemporalTransformer

MEMORY_MODELS: dict[str, type[MemoryModel]] = {
    "mdn_rnn": MDNRNN,
    "residual_mlp": ResidualMLP,
    "latent_mlp": LatentMLP,
    "transformer": TemporalTransformer,
}


def build_memory(name: str, kwargs: dict[str, Any]) -> MemoryModel:
    """The model ``name`` from its kwargs; ``ensemble: K`` > 1 builds K members of it."""
    kw = dict(kwargs)
    k = int(kw.pop("ensemble", 1))
    if k == 1:
        return MEMORY_MODELS[name](**kw)
    return Ensemble([MEMORY_MODELS[name](**kw) for _ in range(k)])
