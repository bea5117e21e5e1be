"""One typed config tree (``schema``), resolved from presets, files and ``--set`` (``merge``),
checked before any work (``validate``)."""

from worldmodels.config.agents import (
    ActorCriticConfig,
    ImaginationConfig,
    MpcConfig,
    PlannerConfig,
    PpoConfig,
)
from worldmodels.config.merge import (
    RESUME_MUTABLE_KEYS,
    apply_overrides,
    dump_yaml,
    flat_items,
    incompatible_keys,
    load_yaml,
    parse_set,
    resolve,
    to_dict,
)
from worldmodels.config.presets import env_presets, method_files, preset_names
from worldmodels.config.schema import (
    CollectConfig,
    Config,
    ControllerConfig,
    DreamConfig,
    EnvConfig,
    EvaluateConfig,
    MemoryConfig,
    ParallelConfig,
    VisionConfig,
)
from worldmodels.config.validate import validate

__all__ = [
    "RESUME_MUTABLE_KEYS",
    "ActorCriticConfig",
    "CollectConfig",
    "Config",
    "ControllerConfig",
    "DreamConfig",
    "EnvConfig",
    "EvaluateConfig",
    "ImaginationConfig",
    "MemoryConfig",
    "MpcConfig",
    "ParallelConfig",
    "PlannerConfig",
    "PpoConfig",
    "VisionConfig",
    "apply_overrides",
    "dump_yaml",
    "env_presets",
    "flat_items",
    "incompatible_keys",
    "load_yaml",
    "method_files",
    "parse_set",
    "preset_names",
    "resolve",
    "to_dict",
    "validate",
]
