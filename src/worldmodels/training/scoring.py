"""The one rule every trainer judges an iteration by (actor-critics, the PPO baseline, CMA-ES):
the score is the deterministic evaluation when there was one, else the mean of the last
``window`` training episodes; it is the learning-curve point, decides the best checkpoint and
the stop at the target."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np


def judged_score(eval_score: float | None, recent: Sequence[float], window: int) -> float:
    """The evaluation's score, else the mean of the last ``window`` training episodes (-inf
    until there are that many)."""
    if eval_score is not None:
        return eval_score
    return float(np.mean(recent)) if len(recent) >= window else -math.inf


def curve_point(eval_score: float | None, recent: Sequence[float]) -> float | None:
    """The learning-curve point: the evaluation, else the recent episodes' mean (None: none)."""
    if eval_score is not None:
        return eval_score
    return float(np.mean(recent)) if len(recent) else None


def reached(score: float, target: float | None) -> bool:
    return target is not None and score >= target


P = TypeVar("P")


def progress_from_dict(cls: type[P], data: dict[str, Any]) -> P:
    """A progress dataclass from a checkpoint's dict; keys it does not know are dropped (an
    older or newer checkpoint's extra counters)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})
