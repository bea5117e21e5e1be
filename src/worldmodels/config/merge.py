"""Resolving a config: defaults -> env preset -> (env, method) preset -> named presets ->
``--config FILE.yaml`` -> ``--set key=value`` (later wins), every key and type checked with a
one-line error; and which keys a resumed run may change."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from worldmodels.config.agents import PlannerConfig
from worldmodels.config.presets import (
    env_preset,
    method_part,
    method_preset,
    named_preset,
    preset_names,
)
from worldmodels.config.schema import SECTIONS, Config
from worldmodels.config.validate import validate
from worldmodels.errors import UserError

# Keys a resumed or re-run run may change: budgets, parallelism and evaluation.
# Anything else (sizes, env, seeds, learning rates) makes the stored checkpoints incompatible.
RESUME_MUTABLE_KEYS = frozenset(
    {
        "collect.episodes",
        "collect.workers",
        "vision.epochs",
        "memory.epochs",
        "controller.generations",
        "controller.eval_every",
        "controller.eval_episodes",
        "controller.target_return",
        "device",
        "threads",
        "method",
        "memory.temperature",
        "dream.horizon",
        "dream.start",
        "dream.done_mode",
        "dream.start_states",
        "dream.rollouts",
        "dream.iterations",
        "dream.eval_episodes",
        "dream.collect_episodes",
        "dream.retrain_epochs",
        "ac.total_steps",
        "ac.updates",
        "ppo.total_steps",
        "ppo.target_return",
        "ppo.stop_window",
        "ppo.eval_every",
        "ppo.eval_episodes",
        "ac.target_return",
        "ac.stop_window",
        "ac.eval_every",
        "ac.eval_episodes",
        "ac.dream_gate",
        "ac.dream_gate_episodes",
        "ac.dream_gate_fraction",
        "evaluate.episodes",
        "evaluate.seed_offset",
        "evaluate.batch_envs",
        "evaluate.planner",
        "controller.workers",
        "parallel.executor",
        "parallel.ray_address",
        "parallel.task_timeout",
        "parallel.max_retries",
        "mpc.total_steps",
    }
    # how to plan never invalidates a checkpoint: the planner reads V and M as they are
    | {f"planner.{f.name}" for f in dataclasses.fields(PlannerConfig)}
)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict (YAML-safe) of a config dataclass; a method's own sections sit at
    the top level beside the built-in ones."""
    out = dataclasses.asdict(cfg)
    out.update(out.pop("sections", {}))
    return out


def load_method_sections(cfg: Config) -> None:
    """Import the methods package (discovery, as a plugin registry does: the config layer does
    not import it statically) so that every method's section is registered, and give ``cfg``
    the sections it lacks -- a stored config.yaml read before any method was imported."""
    importlib.import_module("worldmodels.methods")
    for name, cls in SECTIONS.items():
        cfg.sections.setdefault(name, cls())


def resume_mutable(key: str) -> bool:
    """Whether a resumed run may change ``key`` (a method's section lists its own)."""
    section, _, name = key.partition(".")
    if section in SECTIONS:
        return name in getattr(SECTIONS[section], "MUTABLE", ())
    return key in RESUME_MUTABLE_KEYS


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Check ``value`` against the annotated type ``typ``; return it converted or raise."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except UserError:
                continue
        names = " or ".join("null" if a is type(None) else a.__name__ for a in args)
        raise UserError(f"config key '{key}' expects {names}, got {value!r}")
    if origin is list:
        (item_type,) = typing.get_args(typ)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise UserError(f"config key '{key}' expects a list such as [64, 64], got {value!r}")
        return [_coerce(v, item_type, key) for v in value]
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"config key '{key}' expects true or false, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"config key '{key}' expects an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"config key '{key}' expects a number, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        raise UserError(f"config key '{key}' expects a string, got {value!r}")
    raise UserError(f"config key '{key}' has an unsupported type {typ}")


def apply_overrides(cfg: Any, overrides: dict[str, Any], prefix: str = "") -> None:
    """Apply a nested dict of overrides to a config dataclass in place, checking every key."""
    hints = _hints(type(cfg))
    extra: dict[str, Any] = cfg.sections if isinstance(cfg, Config) else {}
    if isinstance(cfg, Config) and set(overrides) - set(extra) - {"sections"}:
        load_method_sections(cfg)
    names = {f.name for f in dataclasses.fields(cfg)} - {"sections"} | set(extra)
    for key, value in overrides.items():
        full = f"{prefix}{key}"
        if key not in names:
            valid = ", ".join(sorted(f"{prefix}{n}" for n in names))
            raise UserError(f"unknown config key '{full}'; valid keys here: {valid}")
        current = extra[key] if key in extra else getattr(cfg, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise UserError(
                    f"config key '{full}' is a section; set its fields, e.g. {full}.<field>=value"
                )
            apply_overrides(current, value, prefix=f"{full}.")
        else:
            setattr(cfg, key, _coerce(value, hints[key], full))


def parse_set(items: list[str]) -> dict[str, Any]:
    """Turn ``["vision.epochs=3", "controller.hidden_dims=[16,16]"]`` into a nested dict."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set expects key=value (e.g. vision.epochs=3), got '{item}'")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {key}: '{part}' is set both as a value and a section")
        node[parts[-1]] = value
    return out


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with one-line errors."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"config file {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections (env:, vision:, ...)")
    return data


def resolve(
    env_id: str | None,
    presets: list[str],
    file_overrides: dict[str, Any],
    set_overrides: dict[str, Any],
    base: dict[str, Any] | None = None,
    sized: dict[str, Any] | None = None,
) -> Config:
    """Build the resolved config. ``base`` is a stored config.yaml (for an existing run);
    ``sized`` the defaults sized from the env's spaces, used when the env has no preset."""
    cfg = Config()
    if base is not None:
        apply_overrides(cfg, base)
        method = set_overrides.get("method") or file_overrides.get("method")
        if method and method != cfg.method:  # a run continued by another method: its presets
            apply_overrides(cfg, copy.deepcopy(method_preset(cfg.env.id, method)))
            for name in cfg.presets:
                apply_overrides(cfg, copy.deepcopy(method_part(name, method)))
    else:
        env_from_file = (
            file_overrides.get("env", {}).get("id")
            if isinstance(file_overrides.get("env"), dict)
            else None
        )
        chosen = env_id or env_from_file
        if chosen and not env_preset(chosen) and sized:  # no preset: sized from its spaces
            apply_overrides(cfg, copy.deepcopy(sized))
        if chosen:
            apply_overrides(cfg, copy.deepcopy(env_preset(chosen)))
        method = set_overrides.get("method") or file_overrides.get("method") or cfg.method
        if chosen:
            apply_overrides(cfg, copy.deepcopy(method_preset(chosen, method)))
        for name in list(file_overrides.get("presets", []) or []) + presets:
            overlays = named_preset(name, method)
            if overlays is None:
                raise UserError(f"unknown preset '{name}'; available: {', '.join(preset_names())}")
            for overlay in overlays:
                apply_overrides(cfg, copy.deepcopy(overlay))
            if name not in cfg.presets:
                cfg.presets.append(name)
    apply_overrides(cfg, file_overrides)
    apply_overrides(cfg, set_overrides)
    if env_id:
        cfg.env.id = env_id
    validate(cfg)
    return cfg


def flat_items(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_items(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def incompatible_keys(stored: Config, new: Config) -> list[str]:
    """Keys whose values differ and that a resumed run may not change."""
    a, b = flat_items(to_dict(stored)), flat_items(to_dict(new))
    return sorted(k for k in a if a[k] != b.get(k) and not resume_mutable(k))


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
