"""Memory models (M): predict z_{t+1}, r_t and done_t from (z_t, a_t, state)."""

from __future__ import annotations

from typing import Any

from worldmodels.models.memory.base import MemoryModel
from worldmodels.models.memory.mdn_rnn import MDNRNN
from worldmodels.models.memory.residual_mlp import ResidualMLP

MEMORY_MODELS: dict[str, type[MemoryModel]] = {"mdn_rnn": MDNRNN, "residual_mlp": ResidualMLP}


def build_memory(name: str, kwargs: dict[str, Any]) -> MemoryModel:
    return MEMORY_MODELS[name](**kwargs)
