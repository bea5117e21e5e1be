"""Rollout collection into the episode store: random policy or a trained agent, N workers.

Episode ``i`` is always played with seed ``seed * 1_000_003 + i``, so re-running ``collect``
fills in exactly the missing indices: nothing is collected twice and a kill loses at most the
episodes in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from worldmodels.agent import ControllerPolicy, Policy, RandomPolicy
from worldmodels.config import EnvConfig
from worldmodels.data.store import Episode, EpisodeStore
from worldmodels.envs import EnvSpec, make_env
from worldmodels.parallel import make_executor
from worldmodels.rollout import run_episode


@dataclass(frozen=True)
class CollectTask:
    index: int
    seed: int
    env: dict[str, Any]
    spec: dict[str, Any]
    policy: str


def episode_seed(master_seed: int, index: int) -> int:
    return (master_seed * 1_000_003 + index) % (2**31 - 1)


_WORKER_CACHE: dict[str, Any] = {}


def _policy_for(task: CollectTask, spec: EnvSpec) -> Policy:
    rng = np.random.default_rng(task.seed)
    if task.policy == "random":
        return RandomPolicy(spec, rng)
    key = f"agent:{task.policy}"
    if key not in _WORKER_CACHE:
        from worldmodels.pipeline import load_agent_policy

        _WORKER_CACHE[key] = load_agent_policy(task.policy, spec)
    policy: ControllerPolicy = _WORKER_CACHE[key]
    return policy


def run_collect_task(task: CollectTask) -> Episode:
    """Worker entry point: builds its env from the config (cached per process)."""
    spec = EnvSpec.from_dict(task.spec)
    env_key = f"env:{sorted(task.env.items())}"
    if env_key not in _WORKER_CACHE:
        _WORKER_CACHE[env_key] = make_env(EnvConfig(**task.env))
    episode = run_episode(_WORKER_CACHE[env_key], spec, _policy_for(task, spec), task.seed)
    episode.meta["policy"] = task.policy
    return episode


def collect(
    store: EpisodeStore,
    env_cfg: EnvConfig,
    spec: EnvSpec,
    target: int,
    master_seed: int,
    policy: str = "random",
    workers: int = 1,
    progress: bool = True,
) -> int:
    """Fill the store up to ``target`` episodes; returns how many were collected now."""
    store.clean_partial()
    have = set(store.valid_indices())
    missing = [i for i in range(target) if i not in have]
    if not missing:
        return 0
    from dataclasses import asdict

    tasks = [
        CollectTask(i, episode_seed(master_seed, i), asdict(env_cfg), spec.to_dict(), policy)
        for i in missing
    ]
    executor = make_executor("local", workers)
    bar = tqdm(total=len(tasks), desc="collect", unit="ep", disable=not progress)
    try:
        for task, episode in executor.map_unordered(run_collect_task, tasks):
            store.write(task.index, episode)
            bar.update(1)
    finally:
        bar.close()
        executor.close()
    return len(missing)
