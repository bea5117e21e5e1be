"""One typed config tree (``schema``, each field's rules declared on it with ``knob``:
``fields``), resolved from presets, files and ``--set`` (``merge``), checked before any work
(``validate``). A method's own sections are declared beside its code (``declare_section``)."""

from worldmodels.config.fields import Knob, knob
from worldmodels.config.merge import (
    apply_overrides,
    dump_yaml,
    field_rules,
    flat_items,
    incompatible_keys,
    load_yaml,
    parse_set,
    resolve,
    resume_mutable,
    to_dict,
)
from worldmodels.config.presets import env_presets, method_files, preset_names
from worldmodels.config.retired import RETIRED, drop_retired
from worldmodels.config.schema import (
    SECTIONS,
    CollectConfig,
    Config,
    ControllerConfig,
    DreamConfig,
    EnvConfig,
    EvaluateConfig,
    MemoryConfig,
    ParallelConfig,
    PlannerConfig,
    VisionConfig,
    declare_section,
)
from worldmodels.config.validate import validate

__all__ = [
    "RETIRED",
    "SECTIONS",
    "CollectConfig",
    "Config",
    "ControllerConfig",
    "DreamConfig",
    "EnvConfig",
    "EvaluateConfig",
    "Knob",
    "MemoryConfig",
    "ParallelConfig",
    "PlannerConfig",
    "VisionConfig",
    "apply_overrides",
    "declare_section",
    "drop_retired",
    "dump_yaml",
    "env_presets",
    "field_rules",
    "flat_items",
    "incompatible_keys",
    "knob",
    "load_yaml",
    "method_files",
    "parse_set",
    "preset_names",
    "resolve",
    "resume_mutable",
    "to_dict",
    "validate",
]
