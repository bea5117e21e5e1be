"""The episode store: one compressed ``.npz`` file per episode, written atomically.

File format (``ep_000042.npz``, ``numpy.savez_compressed``, read with ``allow_pickle=False``):

=============  ===============  ====================================================
key            shape / dtype    meaning
=============  ===============  ====================================================
observations   [T+1, *obs]      o_0 .. o_T (uint8 frames or float32 vectors)
actions        [T] int64 or     a_t taken in o_t
               [T, A] float32
rewards        [T] float32      r_t received after a_t
terminated     [T] bool         True only at the last step of a terminated episode
meta           0-d str (JSON)   env, seed, index, length, return, truncated, env_steps,
                                policy, format
=============  ===============  ====================================================

A file is first written as ``.ep_000042.npz.tmp`` and renamed into place, so a kill never
leaves a half-written ``ep_*.npz``. A file that fails to read back is reported with its path
and skipped, never silently used.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.errors import CorruptEpisodeError
from worldmodels.runs import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_KEYS = ("observations", "actions", "rewards", "terminated", "meta")


@dataclass
class Episode:
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.rewards.shape[0])


def is_validation(index: int, val_fraction: float) -> bool:
    """Fixed, seed-independent hash split: the same episode is held out in every stage."""
    if val_fraction <= 0:
        return False
    h = (index * 2654435761 + 12345) % (2**32)
    return h / 2**32 < val_fraction


class EpisodeStore:
    """A directory of episode files indexed by episode number."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, index: int) -> Path:
        return self.root / f"ep_{index:06d}.npz"

    def indices(self) -> list[int]:
        """Indices of complete (renamed-into-place) episode files, sorted."""
        if not self.root.exists():
            return []
        out = []
        for p in self.root.glob("ep_*.npz"):
            try:
                out.append(int(p.stem[3:]))
            except ValueError:
                continue
        return sorted(out)

    def clean_partial(self) -> int:
        """Remove temporary files left by a killed writer; returns how many."""
        if not self.root.exists():
            return 0
        stale = list(self.root.glob(".ep_*.tmp*"))
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    def write(self, index: int, episode: Episode) -> Path:
        return self.write_encoded(index, encode_episode(index, episode))

    def write_encoded(self, index: int, data: bytes) -> Path:
        """Write the bytes of :func:`encode_episode` atomically (temp file, fsync, rename)."""
        final = self.path(index)
        atomic_write_bytes(final, data)
        return final

    def read(self, index: int) -> Episode:
        return read_episode(self.path(index))

    def read_meta(self, index: int) -> dict[str, Any]:
        path = self.path(index)
        try:
            with np.load(path, allow_pickle=False) as data:
                return json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise CorruptEpisodeError(f"{path}: {type(exc).__name__}: {exc}") from None

    def valid_indices(self) -> list[int]:
        """Indices whose metadata reads back; corrupt files are reported and skipped."""
        ok = []
        for i in self.indices():
            try:
                self.read_meta(i)
                ok.append(i)
            except CorruptEpisodeError as exc:
                log.warning("skipping corrupt episode file %s", exc)
        return ok

    def iter_episodes(self, indices: list[int]) -> Iterator[tuple[int, Episode]]:
        for i in indices:
            try:
                yield i, self.read(i)
            except CorruptEpisodeError as exc:
                log.warning("skipping corrupt episode file %s", exc)

    def summary(self, first: int | None = None) -> dict[str, Any]:
        """Episodes, steps, real env steps and mean return of the stored episodes (``first``:
        of the first that many only)."""
        metas = []
        for i in self.indices()[:first]:
            try:
                metas.append(self.read_meta(i))
            except CorruptEpisodeError as exc:
                log.warning("skipping corrupt episode file %s", exc)
        returns = [m["return"] for m in metas]
        return {
            "episodes": len(metas),
            "steps": int(sum(m["length"] for m in metas)),
            "env_steps": int(sum(m.get("env_steps", m["length"]) for m in metas)),
            "mean_return": float(np.mean(returns)) if returns else float("nan"),
        }


def encode_episode(index: int, episode: Episode) -> bytes:
    """The compressed file content of an episode. Collection workers call this, so compression
    runs in parallel and only compressed bytes cross processes (13x fewer for CarRacing)."""
    meta = {**episode.meta, "index": index, "length": episode.length, "format": FORMAT_VERSION}
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        observations=episode.observations,
        actions=episode.actions,
        rewards=episode.rewards.astype(np.float32),
        terminated=episode.terminated.astype(bool),
        meta=np.array(json.dumps(meta)),
    )
    return buffer.getvalue()


def read_episode(path: Path) -> Episode:
    """Read and validate one episode file; raises :class:`CorruptEpisodeError`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _KEYS if k not in data.files]
            if missing:
                raise CorruptEpisodeError(f"{path}: missing arrays {missing}")
            arrays = {k: data[k] for k in _KEYS}
        meta = json.loads(str(arrays["meta"]))
    except CorruptEpisodeError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise CorruptEpisodeError(f"{path}: {type(exc).__name__}: {exc}") from None
    t = arrays["rewards"].shape[0]
    if (
        arrays["observations"].shape[0] != t + 1
        or arrays["actions"].shape[0] != t
        or arrays["terminated"].shape[0] != t
        or meta.get("length") != t
    ):
        raise CorruptEpisodeError(
            f"{path}: inconsistent lengths (rewards {t}, observations "
            f"{arrays['observations'].shape[0]}, meta {meta.get('length')})"
        )
    return Episode(
        arrays["observations"], arrays["actions"], arrays["rewards"], arrays["terminated"], meta
    )
