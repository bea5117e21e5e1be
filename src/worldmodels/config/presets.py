"""The preset overlays shipped in ``worldmodels/presets`` (YAML, read once):

- ``envs.yaml``: per env id, applied over the defaults when a run is created;
- ``methods/<method>.yaml``: ``defaults:`` applied for every env under that ``--method``;
  ``sized:`` per observation kind (``vector``, ``pixels``), the sizes and budget of an env
  with no entry of its own; ``envs:`` per env id, applied after those; ``presets:`` the
  method's part of a named preset (e.g. its ``debug`` budgets);
- ``named/<name>.yaml``: ``--preset NAME``, stacked last.

A method's presets are its own file, so adding a method never edits another's.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

_ROOT = Path(__file__).resolve().parent.parent / "presets"


def _read(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"preset file {path} must hold a mapping")
    return data


@functools.cache
def env_presets() -> dict[str, dict[str, Any]]:
    return _read(_ROOT / "envs.yaml")


@functools.cache
def method_files() -> dict[str, dict[str, Any]]:
    """Method name (file stem, ``_`` -> ``-``) -> its preset file."""
    folder = _ROOT / "methods"
    return {
        p.name.removesuffix(".yaml").replace("_", "-"): _read(p)
        for p in sorted(folder.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".yaml")
    }


@functools.cache
def named_presets() -> dict[str, dict[str, Any]]:
    folder = _ROOT / "named"
    return {
        p.name.removesuffix(".yaml"): _read(p)
        for p in sorted(folder.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".yaml")
    }


def env_preset(env_id: str) -> dict[str, Any]:
    return env_presets().get(env_id, {})


def method_preset(env_id: str, method: str) -> dict[str, Any]:
    return (method_files().get(method, {}).get("envs") or {}).get(env_id, {})


def method_defaults(method: str) -> dict[str, Any]:
    """What ``--method method`` sets for every env (its one learning configuration)."""
    return method_files().get(method, {}).get("defaults") or {}


def method_sized(method: str, obs_kind: str) -> dict[str, Any]:
    """The method's sizes and budget for an env of ``obs_kind`` that has no entry of its own."""
    return (method_files().get(method, {}).get("sized") or {}).get(obs_kind) or {}


def method_part(name: str, method: str) -> dict[str, Any]:
    """The method's own part of named preset ``name`` (e.g. its ``debug`` budgets)."""
    return (method_files().get(method, {}).get("presets") or {}).get(name) or {}


def named_preset(name: str, method: str) -> list[dict[str, Any]] | None:
    """The overlays of ``--preset name``: the shared file, then the method's part (None: no
    such preset)."""
    shared = named_presets().get(name)
    own = method_part(name, method)
    if shared is None and name not in preset_names():
        return None
    return [d for d in (shared, own) if d]


def preset_names() -> list[str]:
    names = set(named_presets())
    for data in method_files().values():
        names |= set(data.get("presets") or {})
    return sorted(names)
