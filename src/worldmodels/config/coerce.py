"""Typing a config section from plain data (YAML, ``--set``): every key checked against the
dataclass's fields and annotated types, with a one-line error naming the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from worldmodels.config.retired import RETIRED
from worldmodels.errors import UserError

S = TypeVar("S")


def coerce(value: Any, typ: Any, key: str) -> Any:
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
                return coerce(value, arg, key)
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
        return [coerce(v, item_type, key) for v in value]
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


def apply_fields(node: Any, overrides: dict[str, Any], prefix: str = "") -> None:
    """Apply a nested dict of overrides to the fields of config dataclass ``node`` in place,
    checking every key."""
    hints = typing.get_type_hints(type(node))
    names = {f.name for f in dataclasses.fields(node)} - {"sections"}
    for key, value in overrides.items():
        full = f"{prefix}{key}"
        if key not in names and full in RETIRED:
            raise UserError(f"config key '{full}' was removed: this version no longer has it")
        if key not in names:
            valid = ", ".join(sorted(f"{prefix}{n}" for n in names))
            raise UserError(f"unknown config key '{full}'; valid keys here: {valid}")
        current = getattr(node, key)
        if dataclasses.is_dataclass(current):
            apply_fields(current, section_items(value, full), prefix=f"{full}.")
        else:
            setattr(node, key, coerce(value, hints[key], full))


def section_items(value: Any, full: str) -> dict[str, Any]:
    """The overrides of section ``full``: a mapping, or a one-line error."""
    if not isinstance(value, dict):
        raise UserError(
            f"config key '{full}' is a section; set its fields, e.g. {full}.<field>=value"
        )
    return value


def typed_section(name: str, cls: type[S], value: Any) -> S:
    """Section ``name`` as an instance of its class ``cls``: ``value`` itself, the defaults
    (None) or a mapping read before the section was declared, checked key by key."""
    if isinstance(value, cls):
        return value
    typed = cls()
    apply_fields(typed, value or {}, prefix=f"{name}.")
    return typed
