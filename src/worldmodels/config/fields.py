"""What each config field allows, declared on the field itself (``knob``) and read by
``validate`` (its range) and ``merge`` (whether a resumed run may change it).

A field declared with a plain default gets the generic rule: an integer (a size, a budget, a
count) is >= 1, a float is finite and >= 0, list entries likewise, and a resumed run may not
change it. ``knob`` states the exceptions beside the field, whose docstring below it stays
its help::

    total_steps: int = knob(100_000, mutable=True)
    eval_every: int = knob(0, zero_ok=True, mutable=True)
    gamma: float = knob(0.99, unit=True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

T = TypeVar("T")

KEY = "worldmodels"
"""The metadata key a ``Knob`` is stored under."""


@dataclass(frozen=True)
class Knob:
    """A field's rules. Ranges apply to numbers (and to each entry of a list of numbers)."""

    mutable: bool = False
    """A resumed or re-run run may change it: budgets, parallelism, evaluation, planning.
    Anything else (sizes, env, seeds, learning rates) shapes the stored checkpoints."""
    zero_ok: bool = False
    """Integer: 0 means something (off, none, the default), so it is >= 0 rather than >= 1."""
    signed: bool = False
    """Any finite value, negative included (a return, a log-std, ``-1`` for never)."""
    unit: bool = False
    """Float: a fraction in [0, 1] (a discount, a lambda, a mix)."""
    rate: bool = False
    """Float: a learning rate, in (0, 1]."""
    positive: bool = False
    """Float: > 0 (a step size, a timeout, a gradient-norm clip)."""
    high: float = math.inf
    """An upper bound where a finite but huge value breaks a library or a scheme."""

    def number_range(self, kind: str) -> tuple[float, float, bool]:
        """(low, high, low is exclusive) for a number of ``kind`` ``int`` or ``float``."""
        if self.signed:
            return -math.inf, math.inf, False
        if kind == "int":
            return (0 if self.zero_ok else 1), self.high, False
        if self.rate:
            return 0.0, 1.0, True
        if self.unit:
            return 0.0, 1.0, False
        return 0.0, self.high, self.positive


PLAIN = Knob()


@overload
def knob(
    default: T,
    *,
    mutable: bool = ...,
    zero_ok: bool = ...,
    signed: bool = ...,
    unit: bool = ...,
    rate: bool = ...,
    positive: bool = ...,
    high: float = ...,
) -> T: ...


@overload
def knob(
    *,
    factory: Callable[[], T],
    mutable: bool = ...,
    zero_ok: bool = ...,
    signed: bool = ...,
    unit: bool = ...,
    rate: bool = ...,
    positive: bool = ...,
    high: float = ...,
) -> T: ...


def knob(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    mutable: bool = False,
    zero_ok: bool = False,
    signed: bool = False,
    unit: bool = False,
    rate: bool = False,
    positive: bool = False,
    high: float = math.inf,
) -> Any:
    """A dataclass field with its rules (see ``Knob``); ``factory`` for a list default."""
    rules = Knob(mutable, zero_ok, signed, unit, rate, positive, high)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={KEY: rules})
    return dataclasses.field(default=default, metadata={KEY: rules})


def rules_of(f: dataclasses.Field[Any]) -> Knob:
    """The rules of dataclass field ``f`` (a plain field: the generic ones)."""
    found = f.metadata.get(KEY)
    return found if isinstance(found, Knob) else PLAIN
