"""A sequence replay for world-model training: every real step in one ring of fixed capacity,
in DreamerV3's layout (step t: o_t, the action a_{t-1} that led to it as model features, the
reward r_{t-1}, ``is_first``, ``is_terminal``), sampled as uniform windows of T steps.

Windows may cross episode boundaries (``is_first`` resets the model's state there) but never
the ring's seam between the oldest and the newest step. ``end_fraction`` of each batch's
windows may instead be drawn to end at a stored terminal step (in the spirit of DreamerV2's
``prioritize_ends``): episode ends are rare in a uniform draw, and the continue head learns
them only from those steps. Given ``returns_gamma``, each finished episode's steps also
carry their discounted return to its end (``mc_return``, NaN for the episode in progress):
:func:`returns_to_go`. The episode store on disk is the source of truth: a resumed run
rebuilds the replay from the stored episodes, so it neither loses a finished episode nor
holds one twice.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from worldmodels.data.store import Episode, EpisodeStore


def step_bytes(obs_shape: tuple[int, ...], obs_dtype: np.dtype, action_dim: int) -> int:
    """Bytes one stored step takes."""
    obs = int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize
    return obs + 4 * action_dim + 4 + 2


def returns_to_go(
    rewards: np.ndarray, terminated: bool, boot: float | None, gamma: float
) -> np.ndarray:  # fmt: skip
    """Every step's discounted return to its episode's end, in the replay's layout (L + 1
    steps, o_0 first; ``rewards`` [L], r_t the reward of the step from o_t): G_L = 0 after a
    terminal, else ``boot`` (the value of the last state where a time limit or the budget cut
    the episode; None: unknown, and every G is NaN); G_t = r_t + gamma G_{t+1}."""
    out = np.empty(len(rewards) + 1, np.float64)
    out[-1] = 0.0 if terminated else (math.nan if boot is None else boot)
    for t in range(len(rewards) - 1, -1, -1):
        out[t] = rewards[t] + gamma * out[t + 1]
    return out.astype(np.float32)


def draw_starts(
    rng: np.random.Generator,
    size: int,
    batch: int,
    length: int,
    ends: np.ndarray,
    end_fraction: float,
) -> np.ndarray:
    """Window starts in [0, size - length]: uniform, then the first ``round(batch x
    end_fraction)`` redrawn to end at one of ``ends`` (terminal positions, oldest = 0; a
    terminal fewer than ``length`` steps from the oldest step starts its window at 0). No
    extra draw when there is nothing to redraw, so ``end_fraction`` 0 keeps the uniform
    stream."""
    if size < length:
        raise ValueError(f"replay holds {size} steps, fewer than one window ({length})")
    starts = rng.integers(0, size - length + 1, size=batch)
    k = round(batch * end_fraction)
    if k and len(ends):
        picked = ends[rng.integers(0, len(ends), size=k)]
        starts[:k] = np.maximum(picked - length + 1, 0)
    return starts


class SequenceReplay:
    def __init__(
        self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype, action_dim: int,
        returns_gamma: float | None = None,
    ):  # fmt: skip
        self.capacity, self.gamma = capacity, returns_gamma
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.action = np.zeros((capacity, action_dim), dtype=np.float32)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.is_first = np.zeros(capacity, dtype=bool)
        self.is_terminal = np.zeros(capacity, dtype=bool)
        self.mc = np.full(capacity, math.nan, dtype=np.float32)  # returns to go (gamma given)
        self.size = 0
        self.pos = 0
        self.run = 0  # steps of the newest episode so far

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: float, first: bool, terminal: bool
    ) -> None:
        """One step."""
        i = self.pos
        self.obs[i] = obs
        self.action[i] = action
        self.reward[i] = reward
        self.is_first[i] = first
        self.is_terminal[i] = terminal
        self.mc[i] = math.nan
        self.run = 1 if first else self.run + 1
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def commit(self, index: int, boot: float | None = None) -> None:
        """The episode in progress was stored as ``index`` (the ring holds its steps); with
        ``returns_gamma``, its steps get their returns to go (``boot``: the value of its last
        state, for a time limit's or the budget's cut)."""
        if self.gamma is None:
            return
        k = min(self.run, self.capacity)  # an episode longer than the ring: its newest steps
        idx = (self.pos - k + np.arange(k)) % self.capacity
        end = bool(self.is_terminal[idx[-1]])
        self.mc[idx] = returns_to_go(self.reward[idx[1:]], end, boot, self.gamma)

    def add_episode(self, ep: Episode, action_features: np.ndarray, index: int = -1) -> None:
        """A stored episode, its actions given as model features [T, A]."""
        zero = np.zeros(action_features.shape[1], dtype=np.float32)
        self.add(ep.observations[0], zero, 0.0, True, False)
        for t in range(ep.length):
            terminal = bool(ep.terminated[t])
            self.add(
                ep.observations[t + 1], action_features[t], float(ep.rewards[t]), False, terminal
            )
        self.commit(index, ep.meta.get("boot_value"))

    def sample(
        self, rng: np.random.Generator, batch: int, length: int, end_fraction: float = 0.0
    ) -> dict[str, np.ndarray]:
        """``batch`` windows of ``length`` consecutive steps, [B, T, ...]; the first step of
        each window is marked ``is_first`` (its model state starts from zero)."""
        oldest = self.pos if self.size == self.capacity else 0
        ends = np.empty(0, np.int64)
        if end_fraction > 0:
            ends = np.flatnonzero(self.is_terminal[(oldest + np.arange(self.size)) % self.capacity])
        starts = draw_starts(rng, self.size, batch, length, ends, end_fraction)
        idx = (oldest + starts[:, None] + np.arange(length)[None]) % self.capacity
        first = self.is_first[idx]
        first[:, 0] = True
        out = {
            "obs": self.obs[idx],
            "action": self.action[idx],
            "reward": self.reward[idx],
            "is_first": first,
            "is_terminal": self.is_terminal[idx],
        }
        if self.gamma is not None:
            out["mc_return"] = self.mc[idx]
        return out


def episode_steps(
    ep: Episode, action_features: np.ndarray, returns_gamma: float | None = None
) -> dict[str, np.ndarray]:  # fmt: skip
    """A stored episode in the replay's layout: L + 1 steps (o_0 with a zero action first);
    with ``returns_gamma`` its returns to go as ``mc_return``."""
    n = ep.length + 1
    action = np.zeros((n, action_features.shape[1]), dtype=np.float32)
    action[1:] = action_features
    reward = np.zeros(n, dtype=np.float32)
    reward[1:] = ep.rewards
    first = np.zeros(n, dtype=bool)
    first[0] = True
    terminal = np.zeros(n, dtype=bool)
    terminal[1:] = ep.terminated
    out = {
        "obs": np.asarray(ep.observations),
        "action": action,
        "reward": reward,
        "is_first": first,
        "is_terminal": terminal,
    }
    if returns_gamma is not None:
        end = bool(ep.terminated[-1])
        boot = ep.meta.get("boot_value")
        out["mc_return"] = returns_to_go(ep.rewards, end, boot, returns_gamma)
    return out


class StreamingReplay:
    """The same stream of steps as :class:`SequenceReplay`, and the same windows for the same
    random draws, but kept on disk: finished episodes are read back from the episode store
    (the source of truth) through an LRU cache of at most ``cache_bytes``; only the episode
    in progress is held in RAM. For replays larger than the memory they may take.

    The loop calls ``add`` per step like the ring's, and ``commit(index)`` once the finished
    episode is in the store as ``index``.
    """

    def __init__(
        self,
        capacity: int,
        store: EpisodeStore,
        to_features: Callable[[np.ndarray], np.ndarray],
        cache_bytes: int,
        returns_gamma: float | None = None,
    ):
        self.capacity, self.store, self.to_features = capacity, store, to_features
        self.gamma = returns_gamma
        self.cache_bytes = cache_bytes
        self.episodes: list[int] = []  # store indices, oldest first
        self.offsets: list[int] = []  # each episode's first stream position
        self.total = 0  # steps ever added (finished episodes + the tail)
        self.tail: list[tuple[np.ndarray, np.ndarray, float, bool, bool]] = []
        self.ends: list[int] = []  # stream positions of terminal steps, ascending
        self.cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self.cached = 0

    @property
    def size(self) -> int:
        return min(self.total, self.capacity)

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: float, first: bool, terminal: bool
    ) -> None:
        self.tail.append((np.array(obs), np.array(action, np.float32), reward, first, terminal))
        if terminal:
            self.ends.append(self.total)
        self.total += 1

    def commit(self, index: int, boot: float | None = None) -> None:
        """The episode in progress is now ``index`` in the store (its returns to go are
        computed when it is read back, ``boot`` from its meta)."""
        self.offsets.append(self.total - len(self.tail))
        self.episodes.append(index)
        self.tail = []

    def add_episode(self, ep: Episode, action_features: np.ndarray, index: int = -1) -> None:
        """A stored episode (on resume): indexed, not held."""
        self.offsets.append(self.total)
        self.episodes.append(index)
        done = np.flatnonzero(ep.terminated)
        self.ends.extend(self.total + 1 + int(t) for t in done)
        self.total += ep.length + 1

    def _episode(self, k: int) -> dict[str, np.ndarray]:
        index = self.episodes[k]
        if index in self.cache:
            self.cache.move_to_end(index)
            return self.cache[index]
        ep = self.store.read(index)
        steps = episode_steps(ep, self.to_features(ep.actions), self.gamma)
        nbytes = sum(v.nbytes for v in steps.values())
        while self.cache and self.cached + nbytes > self.cache_bytes:
            _, old = self.cache.popitem(last=False)
            self.cached -= sum(v.nbytes for v in old.values())
        if nbytes <= self.cache_bytes:
            self.cache[index] = steps
            self.cached += nbytes
        return steps

    def _tail(self) -> dict[str, np.ndarray]:
        obs, action, reward, first, terminal = zip(*self.tail, strict=True)
        out = {
            "obs": np.stack(obs),
            "action": np.stack(action),
            "reward": np.asarray(reward, np.float32),
            "is_first": np.asarray(first, bool),
            "is_terminal": np.asarray(terminal, bool),
        }
        if self.gamma is not None:
            out["mc_return"] = np.full(len(reward), math.nan, np.float32)
        return out

    def _window(self, pos: int, length: int) -> dict[str, np.ndarray]:
        parts: list[dict[str, np.ndarray]] = []
        need = length
        k = bisect.bisect_right(self.offsets, pos) - 1
        while need > 0:
            if k < len(self.episodes):
                steps, start = self._episode(k), self.offsets[k]
            else:
                steps, start = self._tail(), self.total - len(self.tail)
            lo = pos - start
            part = {key: v[lo : lo + need] for key, v in steps.items()}
            got = len(part["reward"])
            parts.append(part)
            need, pos, k = need - got, pos + got, k + 1
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    def sample(
        self, rng: np.random.Generator, batch: int, length: int, end_fraction: float = 0.0
    ) -> dict[str, np.ndarray]:
        """As :meth:`SequenceReplay.sample`, from the newest ``capacity`` steps."""
        oldest = self.total - self.size
        first = bisect.bisect_left(self.ends, oldest)
        ends = np.asarray(self.ends[first:], np.int64) - oldest
        starts = draw_starts(rng, self.size, batch, length, ends, end_fraction)
        windows = [self._window(oldest + int(s), length) for s in starts]
        out = {key: np.stack([w[key] for w in windows]) for key in windows[0]}
        out["is_first"][:, 0] = True
        return out


Replay = SequenceReplay | StreamingReplay
