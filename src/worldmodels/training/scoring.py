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


@dataclasses.dataclass
class AgentProgress:
    """The counters every agent's loop keeps and saves in its ``last`` checkpoint."""

    iteration: int = 0
    env_steps: int = 0
    """Real env steps of training (frame skip counts every frame)."""
    eval_steps: int = 0
    """Real env steps of the periodic evaluations."""
    best_score: float = -math.inf
    real_env_steps: int = 0
    """Every real env step: collection, training and evaluations."""
    recent: list[float] = dataclasses.field(default_factory=list)
    """Returns of the latest training episodes."""
    complete: bool = False


P = TypeVar("P")


def progress_from_dict(cls: type[P], data: dict[str, Any]) -> P:
    """A progress dataclass from a checkpoint's dict; keys it does not know are dropped (an
    older or newer checkpoint's extra counters)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})
