"""worldmodels: learn a model of any Gymnasium environment, then act well with it.

The public API (``worldmodels.api``, imported on first use): ``open_run(run_dir)`` gives a
finished run's agent, world model and envs; Gymnasium knows ``worldmodels/Dream-v0`` (the
run's dream; ``gym.make_vec`` gives the batched one) and ``worldmodels/Real-v0`` (the real env
seen through the run's V and M, the same observation space).
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium

__version__ = "0.1.0"
__all__ = ["Agent", "Run", "__version__", "open_run"]

if "worldmodels/Dream-v0" not in gymnasium.registry:
    gymnasium.register(
        "worldmodels/Dream-v0",
        entry_point="worldmodels.api:make_dream",
        vector_entry_point="worldmodels.api:make_dream_vec",
        disable_env_checker=True,
    )
    gymnasium.register(
        "worldmodels/Real-v0", entry_point="worldmodels.api:make_real", disable_env_checker=True
    )


def __getattr__(name: str) -> Any:  # the API imports torch and the models: on first use only
    if name in ("Agent", "Run", "open_run"):
        return getattr(importlib.import_module("worldmodels.api"), name)
    raise AttributeError(f"module 'worldmodels' has no attribute {name!r}")
