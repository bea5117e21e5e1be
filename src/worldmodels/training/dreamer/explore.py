"""Exploration in the real env: temporally-extended epsilon-greedy (ez-greedy, Dabney et al.
2021; ``dreamer.explore_eps``). The exploration in imagination, Plan2Explore's ensemble
disagreement (``dreamer.expl_scale``), is the agent's (``agent.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldmodels.envs import EnvSpec, random_action
from worldmodels.training.dreamer.config import DreamerConfig

MAX_HOLD = 10_000
"""The longest hold of an ez-greedy random action (decisions)."""


@dataclass
class HeldAction:
    """ez-greedy's random action in progress (``dreamer.explore_eps``): the action and how many
    more decisions it is held. Lives for one episode, so resume needs none of it."""

    action: np.ndarray | None = None
    left: int = 0
    decisions: int = 0
    """Decisions of the episode that took a held random action."""

    def next(self, dc: DreamerConfig, spec: EnvSpec, rng: np.random.Generator) -> np.ndarray | None:
        """The random action for this decision, or None (the actor's). Draws from ``rng`` only
        with ``explore_eps`` > 0, so a run without it draws what it always did."""
        if dc.explore_eps <= 0:
            return None
        if self.left == 0 and rng.random() < dc.explore_eps:
            self.action = random_action(spec, rng)
            self.left = int(min(rng.zipf(dc.explore_exponent), MAX_HOLD))
        if self.left == 0:
            return None
        self.left -= 1
        self.decisions += 1
        return self.action
