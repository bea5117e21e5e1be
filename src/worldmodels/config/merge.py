"""Resolving a config: defaults -> env preset -> (env, method) preset -> named presets ->
``--config FILE.yaml`` -> ``--set key=value`` (later wins), every key and type checked with a
one-line error; and which keys a resumed run may change."""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from worldmodels.config.coerce import apply_fields, section_items, typed_section
from worldmodels.config.fields import Knob, rules_of
from worldmodels.config.presets import (
    env_preset,
    method_defaults,
    method_part,
    method_preset,
    method_sized,
    named_preset,
    preset_names,
)
from worldmodels.config.schema import SECTIONS, Config
from worldmodels.config.validate import validate
from worldmodels.errors import UserError


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def bind_sections(cfg: Config) -> None:
    """Give ``cfg`` every declared section it lacks, and type those it holds as mappings."""
    for name, cls in SECTIONS.items():
        cfg.sections[name] = typed_section(name, cls, cfg.sections.get(name))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict (YAML-safe) of a config dataclass; a method's own sections sit at
    the top level beside the shared ones."""
    if isinstance(cfg, Config):
        bind_sections(cfg)
    out = dataclasses.asdict(cfg)
    out.update(out.pop("sections", {}))
    return out


def field_rules(key: str) -> Knob | None:
    """The rules (``knob``) of config key ``key``, e.g. ``ppo.total_steps``; None: no such
    key among the declared ones."""
    parts = key.split(".")
    cls: Any = Config
    if parts[0] in SECTIONS:
        cls, parts = SECTIONS[parts[0]], parts[1:]
    for i, part in enumerate(parts):
        found = {f.name: f for f in dataclasses.fields(cls)}.get(part)
        if found is None or part == "sections":
            return None
        if i == len(parts) - 1:
            return rules_of(found)
        cls = _hints(cls)[part]
        if not dataclasses.is_dataclass(cls):
            return None
    return None


def resume_mutable(key: str) -> bool:
    """Whether a resumed or re-run run may change ``key``: the field is declared
    ``mutable`` (budgets, parallelism, evaluation); anything else (sizes, env, seeds, learning
    rates) shapes the stored checkpoints."""
    found = field_rules(key)
    return found is not None and found.mutable


def apply_overrides(
    cfg: Any, overrides: dict[str, Any], prefix: str = "", keep_unknown: bool = False
) -> None:
    """Apply a nested dict of overrides to a config dataclass in place, checking every key.
    ``keep_unknown``: a top-level mapping that is no declared section (a stored config.yaml
    read before its method was registered) is kept as it is rather than refused."""
    if not isinstance(cfg, Config):
        apply_fields(cfg, overrides, prefix)
        return
    bind_sections(cfg)
    names = {f.name for f in dataclasses.fields(cfg)} - {"sections"} | set(SECTIONS)
    for key, value in overrides.items():
        if key in SECTIONS:
            apply_fields(cfg.sections[key], section_items(value, key), prefix=f"{key}.")
        elif key in names:
            apply_fields(cfg, {key: value})
        elif keep_unknown and isinstance(value, dict):
            cfg.sections[key] = _merged(cfg.sections.get(key) or {}, value)
        else:
            valid = ", ".join(sorted(names))
            raise UserError(f"unknown config key '{key}'; valid keys here: {valid}")


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = _merged(out[k], v) if both else copy.deepcopy(v)
    return out


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
    obs_kind: str | None = None,
) -> Config:
    """Build the resolved config. ``base`` is a stored config.yaml (for an existing run);
    ``sized`` the defaults sized from the env's spaces, used when the env has no preset;
    ``obs_kind`` (``vector`` or ``pixels``) picks the method's sizes for an env it has no
    entry for."""
    cfg = Config()
    if base is not None:
        apply_overrides(cfg, base)
        method = set_overrides.get("method") or file_overrides.get("method")
        if method and method != cfg.method:  # a run continued by another method: its presets
            _method_overlays(cfg, cfg.env.id, method, obs_kind)
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
            _method_overlays(cfg, chosen, method, obs_kind)
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


def _method_overlays(cfg: Config, env_id: str, method: str, obs_kind: str | None) -> None:
    """The method's defaults for every env, then the env's own entry, or where it has none
    (and the observation kind is known) the method's sizes for that kind."""
    apply_overrides(cfg, copy.deepcopy(method_defaults(method)))
    own = method_preset(env_id, method)
    if not own and obs_kind:
        own = method_sized(method, obs_kind)
    apply_overrides(cfg, copy.deepcopy(own))


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
