"""Rollout collection into the episode store: random policy or a trained agent, N workers.

Episode ``i`` is always played with the ``i``-th reset seed of the run's collection stream
(``worldmodels.seeding``), so re-running ``collect``
fills in exactly the missing indices: nothing is collected twice and a kill loses at most the
episodes in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from worldmodels.config import EnvConfig
from worldmodels.data.rollout import Policy, RandomPolicy, run_episode
from worldmodels.data.store import EpisodeStore, encode_episode
from worldmodels.envs import EnvSpec, make_env
from worldmodels.parallel import FailurePolicy, make_executor
from worldmodels.progress import progress_bar
from worldmodels.seeding import Stream, reset_seed

PolicyLoader = Callable[[str, EnvSpec], Policy]


@dataclass(frozen=True)
class CollectTask:
    """A few episodes for one worker: plain data, the env is built inside the worker."""

    indices: tuple[int, ...]
    seeds: tuple[int, ...]
    env: dict[str, Any]
    spec: dict[str, Any]
    policy: str
    loader: PolicyLoader | None = None
    """Builds the acting policy from a run directory (a module-level function, so it pickles
    by reference into the worker); None for ``random``."""

    def describe(self) -> str:
        return (
            f"collecting {self.env['id']} episodes {list(self.indices)} "
            f"(seeds {list(self.seeds)}, policy {self.policy})"
        )


def episode_seed(master_seed: int, index: int) -> int:
    return reset_seed(master_seed, Stream.COLLECT, index)


_WORKER_CACHE: dict[str, Any] = {}


def _policy_for(task: CollectTask, seed: int, spec: EnvSpec) -> Policy:
    rng = np.random.default_rng(seed)
    if task.policy == "random":
        return RandomPolicy(spec, rng)
    from worldmodels.runs import RunDir, file_sha256

    ckpt = RunDir(task.policy).ckpt_path("controller/best")
    key = f"agent:{task.policy}:{file_sha256(ckpt) if ckpt.exists() else ''}"
    if key not in _WORKER_CACHE:
        if task.loader is None:
            raise ValueError(f"collect.policy={task.policy} needs a policy loader")
        _WORKER_CACHE[key] = task.loader(task.policy, spec)
    return _WORKER_CACHE[key]


def run_collect_task(task: CollectTask) -> list[bytes]:
    """Worker entry point: builds its env from the config (cached per process) and returns each
    episode already encoded as its compressed file content."""
    spec = EnvSpec.from_dict(task.spec)
    env_key = f"env:{sorted(task.env.items())}"
    if env_key not in _WORKER_CACHE:
        _WORKER_CACHE[env_key] = make_env(EnvConfig(**task.env))
    encoded = []
    for index, seed in zip(task.indices, task.seeds, strict=True):
        episode = run_episode(_WORKER_CACHE[env_key], spec, _policy_for(task, seed, spec), seed)
        episode.meta["policy"] = task.policy
        encoded.append(encode_episode(index, episode))
    return encoded


def chunk_size(missing: int, workers: int, in_process: bool) -> int:
    """Episodes per task: enough to amortise the cost of shipping a task to another process,
    small enough that a crash loses little (one task per worker is in flight)."""
    return 1 if in_process else max(1, min(16, missing // (workers * 8)))


def collect(
    store: EpisodeStore,
    env_cfg: EnvConfig,
    spec: EnvSpec,
    target: int,
    master_seed: int,
    policy: str = "random",
    workers: int = 1,
    progress: bool = True,
    executor: str = "local",
    ray_address: str | None = None,
    policy_on_failure: FailurePolicy | None = None,
    loader: PolicyLoader | None = None,
) -> int:
    """Fill the store up to ``target`` episodes; returns how many were collected now."""
    store.clean_partial()
    have = set(store.valid_indices())
    missing = [i for i in range(target) if i not in have]
    if not missing:
        return 0
    size = chunk_size(len(missing), workers, in_process=executor == "local" and workers <= 1)
    chunks = [missing[k : k + size] for k in range(0, len(missing), size)]
    tasks = [
        CollectTask(
            tuple(chunk),
            tuple(episode_seed(master_seed, i) for i in chunk),
            asdict(env_cfg),
            spec.to_dict(),
            policy,
            loader,
        )
        for chunk in chunks
    ]
    pool = make_executor(executor, workers, ray_address, policy_on_failure)
    bar = progress_bar(total=len(missing), desc="collect", unit="ep", disable=not progress)
    try:
        for task, episodes in pool.map_unordered(run_collect_task, tasks):
            for index, data in zip(task.indices, episodes, strict=True):
                store.write_encoded(index, data)
            bar.update(len(episodes))
    finally:
        bar.close()
        pool.close()
    return len(missing)
