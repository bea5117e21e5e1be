"""Range checks that the type system cannot express, all before any work starts.

Every number in the tree passes its field's rule first (``check_numbers``): the generic one
(floats finite and >= 0, integers -- sizes, budgets, counts -- >= 1, list entries likewise) or
the exception its field declares with ``knob`` (``fields.py``); then the choices and the
relations between fields, and each method section's own ``check()``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from typing import Any

from worldmodels.config.fields import Knob, rules_of
from worldmodels.config.schema import Config
from worldmodels.errors import UserError


def numbers(node: Any, prefix: str = "") -> Iterator[tuple[str, str, Any, Knob]]:
    """(key, declared type, value, rules) of every leaf of the tree, method sections included
    (a section still held as a plain mapping, its method not registered, is not typed yet)."""
    for f in fields(node):
        value = getattr(node, f.name)
        if is_dataclass(value):
            yield from numbers(value, f"{prefix}{f.name}.")
        elif f.name == "sections" and isinstance(value, dict):
            for name, section in value.items():
                if is_dataclass(section):
                    yield from numbers(section, f"{name}.")
        else:
            yield f"{prefix}{f.name}", str(f.type), value, rules_of(f)


def check_numbers(cfg: Config) -> None:
    """Each number's rule (see the module docstring)."""
    for key, declared, value, rules in numbers(cfg):
        kind = "float" if "float" in declared else "int" if "int" in declared else None
        if kind is None or value is None or isinstance(value, bool):
            continue
        subject = "each entry" if isinstance(value, list) else "it"
        low, high, open_low = rules.number_range(kind)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, float) and not math.isfinite(item):
                raise UserError(f"{key}={value} is not finite: {subject} must be a finite number")
            if item < low or item > high or (open_low and item == low):
                raise UserError(
                    f"{key}={value} is out of range: {subject} must be "
                    f"{describe(low, high, open_low)}"
                )


def describe(low: float, high: float, open_low: bool) -> str:
    if high < math.inf:
        return f"{'(' if open_low else '['}{low:g}, {high:.10g}]"
    if open_low:
        return f"> {low:g}"
    return f">= {low:g}" + (" (a size, a budget or a count)" if low == 1 else "")


def validate(cfg: Config) -> None:
    """Range checks that the type system cannot express."""
    check_numbers(cfg)
    checks = [
        (cfg.collect.val_fraction < 1.0, "collect.val_fraction must be in [0, 1)"),
        (
            cfg.vision.kind in ("auto", "conv_vae", "mlp_vae", "mlp_ae", "identity", "vq_vae"),
            "vision.kind must be auto, conv_vae, mlp_vae, mlp_ae, identity or vq_vae",
        ),
        (cfg.vision.vq_codes >= 2, "vision.vq_codes must be >= 2"),
        (
            cfg.memory.kind in ("mdn_rnn", "residual_mlp", "latent_mlp", "transformer"),
            "memory.kind must be mdn_rnn, residual_mlp, latent_mlp or transformer",
        ),
        (
            cfg.memory.hidden_dim % cfg.memory.attn_heads == 0,
            f"memory.hidden_dim ({cfg.memory.hidden_dim}) must be a multiple of "
            f"memory.attn_heads ({cfg.memory.attn_heads})",
        ),
        (cfg.memory.heads in ("hidden", "next"), "memory.heads must be hidden or next"),
        (
            cfg.memory.train_mode in ("single", "multistep", "teacher_forcing", "curriculum"),
            "memory.train_mode must be single, multistep, teacher_forcing or curriculum",
        ),
        (
            cfg.planner.kind in ("auto", "enumerate", "cem", "mppi"),
            "planner.kind must be auto, enumerate, cem or mppi",
        ),
        (
            cfg.planner.aggregate in ("mean", "pessimistic"),
            "planner.aggregate must be mean or pessimistic",
        ),
        (
            cfg.planner.elites <= cfg.planner.population,
            "planner.elites must be between 1 and planner.population",
        ),
        (cfg.dream.start in ("initial", "any"), "dream.start must be initial or any"),
        (
            cfg.dream.done_mode in ("threshold", "sample"),
            "dream.done_mode must be threshold or sample",
        ),
        (cfg.controller.kind in ("linear", "mlp"), "controller.kind must be linear or mlp"),
        (cfg.controller.population >= 2, "controller.population must be >= 2"),
        (
            cfg.controller.eval_chunks <= cfg.controller.population,
            "controller.eval_chunks must be between 1 and controller.population",
        ),
        (cfg.parallel.executor in ("local", "ray"), "parallel.executor must be local or ray"),
        (cfg.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
        (cfg.env.image_size >= 8, "env.image_size must be >= 8"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    if cfg.env.image_size != 64 and cfg.vision.kind in ("conv_vae", "vq_vae"):
        raise UserError(
            f"vision.kind={cfg.vision.kind} needs env.image_size=64 (its 4 conv layers assume "
            "64x64)"
        )
    for section in cfg.sections.values():  # a method's own section checks itself
        check = getattr(section, "check", None)
        if check is not None:
            check()
