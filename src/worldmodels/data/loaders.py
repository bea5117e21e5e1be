"""Batches for V (frames) and M (latent sequences), streamed in chunks of episodes so the
whole dataset is never in RAM; and the latent cache, keyed by the vision checkpoint's hash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.config.schema import MemoryConfig
from worldmodels.data.store import Episode, EpisodeStore
from worldmodels.envs import EnvSpec
from worldmodels.errors import CorruptEpisodeError
from worldmodels.models.memory.base import MemoryBatch, State
from worldmodels.progress import progress_bar
from worldmodels.runs import atomic_write, atomic_write_json

log = logging.getLogger(__name__)

StartStates = Callable[[np.ndarray, np.ndarray, list[int]], list[State]]
"""(z [T+1, Z], action features [T, A], window starts) -> M's state at each start."""


def frame_batches(
    store: EpisodeStore,
    indices: list[int],
    batch_size: int,
    rng: np.random.Generator,
    chunk_episodes: int,
) -> Iterator[np.ndarray]:
    """One epoch of shuffled frames: episodes in random order, ``chunk_episodes`` at a time,
    frames shuffled within the chunk."""
    order = rng.permutation(len(indices))
    for start in range(0, len(order), chunk_episodes):
        chunk = [indices[j] for j in order[start : start + chunk_episodes]]
        frames = [ep.observations for _, ep in store.iter_episodes(chunk)]
        if not frames:
            continue
        pool = np.concatenate(frames)
        perm = rng.permutation(len(pool))
        for b in range(0, len(perm), batch_size):
            yield pool[perm[b : b + batch_size]]


def observation_stats(store: EpisodeStore, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of vector observations (streaming, float64)."""
    total, s, ss = 0, None, None
    for _, ep in store.iter_episodes(indices):
        x = ep.observations.astype(np.float64)
        s = x.sum(0) if s is None else s + x.sum(0)
        ss = (x**2).sum(0) if ss is None else ss + (x**2).sum(0)
        total += len(x)
    if total == 0 or s is None or ss is None:
        raise ValueError("no observations to compute statistics from")
    mean = s / total
    std = np.sqrt(np.maximum(ss / total - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


class LatentCache:
    """Per-episode latents (mu, logvar of V's posterior) under ``latents/<vision sha256>/``.

    The directory name is the content hash of the vision checkpoint that encoded them, so
    latents are never reused against another V.
    """

    def __init__(self, root: Path, vision_hash: str):
        self.vision_hash = vision_hash
        self.root = Path(root) / vision_hash[:16]

    def path(self, index: int) -> Path:
        return self.root / f"ep_{index:06d}.npz"

    def has(self, index: int) -> bool:
        return self.path(index).exists()

    def write(self, index: int, mu: np.ndarray, logvar: np.ndarray, episode: Episode) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / "vision.json"
        if not marker.exists():
            atomic_write_json(marker, {"vision_sha256": self.vision_hash})
        atomic_write(
            self.path(index),
            lambda fh: np.savez(
                fh,
                mu=mu.astype(np.float32),
                logvar=logvar.astype(np.float32),
                actions=episode.actions,
                rewards=episode.rewards,
                terminated=episode.terminated,
            ),
        )

    def read(self, index: int) -> dict[str, np.ndarray]:
        path = self.path(index)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError) as exc:
            raise CorruptEpisodeError(f"{path}: {type(exc).__name__}: {exc}") from None


@torch.no_grad()
def encode_missing(
    cache: LatentCache,
    store: EpisodeStore,
    indices: list[int],
    vision,
    device: torch.device,
    batch_size: int = 256,
    progress: bool = True,
) -> int:
    """Encode every episode not yet in the cache; returns how many were encoded."""
    todo = [i for i in indices if not cache.has(i)]
    bar = progress_bar(
        store.iter_episodes(todo),
        total=len(todo),
        desc="encode latents",
        unit="ep",
        disable=not progress or not todo,
        leave=False,
    )
    for i, ep in bar:
        mu, logvar = vision.encode_episode(ep.observations, ep.actions, device, batch_size)
        cache.write(i, mu, logvar, ep)
    return len(todo)


def _action_features(actions: np.ndarray, action_kind: str, action_dim: int) -> np.ndarray:
    if action_kind == "discrete":
        out = np.zeros((len(actions), action_dim), dtype=np.float32)
        out[np.arange(len(actions)), actions.astype(np.int64)] = 1.0
        return out
    return actions.astype(np.float32).reshape(len(actions), action_dim)


def sequence_batches(
    cache: LatentCache,
    indices: list[int],
    mc: MemoryConfig,
    spec: EnvSpec,
    rng: np.random.Generator,
    sample_latents: bool,
    device: torch.device,
    start_states: StartStates | None = None,
) -> Iterator[MemoryBatch]:
    """One epoch of windows of ``mc.seq_len`` transitions covering every episode once (random
    phase), ``mc.batch_size`` per batch, ``mc.chunk_episodes`` episodes shuffled together,
    padded and masked at episode ends. With ``start_states``, each window carries M's
    state at its first step, run from the episode's start (truncated backpropagation through
    time: M then trains on the states it acts from, however far into an episode)."""
    seq_len, chunk_episodes = mc.seq_len, mc.chunk_episodes
    order = rng.permutation(len(indices))
    for start in range(0, len(order), chunk_episodes):
        windows = []
        for j in order[start : start + chunk_episodes]:
            try:
                d = cache.read(indices[j])
            except CorruptEpisodeError as exc:
                log.warning("skipping corrupt latent file %s", exc)
                continue
            t = len(d["rewards"])
            z = d["mu"]
            if sample_latents:
                z = z + rng.standard_normal(z.shape).astype(np.float32) * np.exp(0.5 * d["logvar"])
            acts = _action_features(d["actions"], spec.action_kind, spec.action_dim)
            bounds = _window_bounds(t, seq_len, rng)
            states = start_states(z, acts, [s0 for s0, _ in bounds]) if start_states else None
            for w, (s0, e) in enumerate(bounds):
                window = (z[s0 : e + 1], acts[s0:e], d["rewards"][s0:e], d["terminated"][s0:e])
                windows.append((*window, states[w]) if states else window)
        yield from _batches(windows, mc, rng, device)


def observation_sequences(
    store: EpisodeStore,
    indices: list[int],
    mc: MemoryConfig,
    spec: EnvSpec,
    rng: np.random.Generator,
    device: torch.device,
) -> Iterator[MemoryBatch]:
    """``sequence_batches`` on raw observations instead of cached latents (joint training of
    V and M): each batch's ``z`` holds observations o_0..o_T [B, T+1, *obs] in their stored
    dtype, padded with zeros; ``mask`` marks the real transitions."""
    seq_len, chunk_episodes = mc.seq_len, mc.chunk_episodes
    order = rng.permutation(len(indices))
    for start in range(0, len(order), chunk_episodes):
        windows = []
        for _, ep in store.iter_episodes(
            [indices[j] for j in order[start : start + chunk_episodes]]
        ):
            t = len(ep.rewards)
            acts = _action_features(ep.actions, spec.action_kind, spec.action_dim)
            term = ep.terminated.astype(np.float32)
            for s0, e in _window_bounds(t, seq_len, rng):
                windows.append(
                    (ep.observations[s0 : e + 1], acts[s0:e], ep.rewards[s0:e], term[s0:e])
                )
        yield from _batches(windows, mc, rng, device)


def _batches(
    windows: list[tuple[Any, ...]], mc: MemoryConfig, rng: np.random.Generator, device: Any
) -> Iterator[MemoryBatch]:
    """The windows shuffled into padded batches of ``mc.batch_size``."""
    perm = rng.permutation(len(windows))
    for b in range(0, len(perm), mc.batch_size):
        yield _pad([windows[k] for k in perm[b : b + mc.batch_size]], mc.seq_len, device)


def _window_bounds(t: int, seq_len: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """[start, end) of windows of ``seq_len`` transitions covering an episode of ``t`` steps
    once, at a random phase (the first window may be shorter)."""
    offset = int(rng.integers(seq_len)) if t > seq_len else 0
    bounds = []
    for s in range(offset - seq_len if offset else 0, t, seq_len):
        s0, e = max(s, 0), min(s + seq_len, t)
        if e > s0:
            bounds.append((s0, e))
    return bounds


def _pad(windows: list[tuple[np.ndarray, ...]], seq_len: int, device: torch.device) -> MemoryBatch:
    n = len(windows)
    first, adim = windows[0][0], windows[0][1].shape[-1]
    z = np.zeros((n, seq_len + 1, *first.shape[1:]), first.dtype)
    a = np.zeros((n, seq_len, adim), np.float32)
    r = np.zeros((n, seq_len), np.float32)
    d = np.zeros((n, seq_len), np.float32)
    m = np.zeros((n, seq_len), np.float32)
    for k, (zw, aw, rw, dw, *_) in enumerate(windows):
        t = len(rw)
        z[k, : t + 1], a[k, :t], r[k, :t], d[k, :t], m[k, :t] = zw, aw, rw, dw, 1.0
    state = None
    if len(windows[0]) == 5:  # each window's M state at its start, [1, ...] per tensor
        state = tuple(
            torch.cat(part).to(device) for part in zip(*(w[4] for w in windows), strict=True)
        )

    def to(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, device=device)

    return MemoryBatch(to(z), to(a), to(r), to(d), to(m), state=state)
