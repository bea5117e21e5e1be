"""A sequence replay for world-model training: every real step in one ring of fixed capacity,
in DreamerV3's layout (step t: o_t, the action a_{t-1} that led to it as model features, the
reward r_{t-1}, ``is_first``, ``is_terminal``), sampled as uniform windows of T steps.

Windows may cross episode boundaries (``is_first`` resets the model's state there) but never
the ring's seam between the oldest and the newest step. The episode store on disk is the
source of truth: a resumed run rebuilds the replay from the stored episodes, so it neither
loses a finished episode nor holds one twice.
"""

from __future__ import annotations

import numpy as np

from worldmodels.data.store import Episode


def step_bytes(obs_shape: tuple[int, ...], obs_dtype: np.dtype, action_dim: int) -> int:
    """Bytes one stored step takes."""
    obs = int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize
    return obs + 4 * action_dim + 4 + 2


class SequenceReplay:
    def __init__(
        self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype, action_dim: int
    ):
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.action = np.zeros((capacity, action_dim), dtype=np.float32)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.is_first = np.zeros(capacity, dtype=bool)
        self.is_terminal = np.zeros(capacity, dtype=bool)
        self.size = 0
        self.pos = 0

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: float, first: bool, terminal: bool
    ) -> None:
        i = self.pos
        self.obs[i] = obs
        self.action[i] = action
        self.reward[i] = reward
        self.is_first[i] = first
        self.is_terminal[i] = terminal
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def add_episode(self, ep: Episode, action_features: np.ndarray) -> None:
        """A stored episode, its actions given as model features [T, A]."""
        zero = np.zeros(action_features.shape[1], dtype=np.float32)
        self.add(ep.observations[0], zero, 0.0, True, False)
        for t in range(ep.length):
            terminal = bool(ep.terminated[t])
            self.add(
                ep.observations[t + 1], action_features[t], float(ep.rewards[t]), False, terminal
            )

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> dict[str, np.ndarray]:
        """``batch`` windows of ``length`` consecutive steps, [B, T, ...]; the first step of
        each window is marked ``is_first`` (its model state starts from zero)."""
        if self.size < length:
            raise ValueError(f"replay holds {self.size} steps, fewer than one window ({length})")
        oldest = self.pos if self.size == self.capacity else 0
        starts = rng.integers(0, self.size - length + 1, size=batch)
        idx = (oldest + starts[:, None] + np.arange(length)[None]) % self.capacity
        first = self.is_first[idx]
        first[:, 0] = True
        return {
            "obs": self.obs[idx],
            "action": self.action[idx],
            "reward": self.reward[idx],
            "is_first": first,
            "is_terminal": self.is_terminal[idx],
        }
