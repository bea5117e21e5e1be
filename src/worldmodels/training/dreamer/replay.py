"""The Dreamer agent's replay of every real step: its capacity, its memory budget (a RAM ring
when it fits, else a stream from the episode store through an LRU cache), its rebuild from the
stored episodes on resume, and a random pre-fill for measurements and tests."""

from __future__ import annotations

import logging
import os

import gymnasium as gym
import numpy as np

from worldmodels.data.replay import Replay, SequenceReplay, StreamingReplay, step_bytes
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import EnvSpec, action_to_env, random_action
from worldmodels.training.dreamer.agent import Dreamer
from worldmodels.training.dreamer.checkpoints import DreamerProgress
from worldmodels.training.dreamer.config import DreamerConfig

LOG = logging.getLogger(__name__)


def replay_steps(dc: DreamerConfig, spec: EnvSpec) -> int:
    """The replay's capacity: ``replay_capacity``, capped at what ``total_steps`` can fill
    (each episode stores its first observation too: one step more per episode)."""
    longest = spec.max_episode_steps or 1000
    return min(dc.replay_capacity, 2 * dc.total_steps + 2 * longest)


def obs_dtype(spec: EnvSpec) -> np.dtype:
    return np.dtype(np.uint8 if spec.obs_kind == "pixels" else np.float32)


def replay_budget(dc: DreamerConfig, spec: EnvSpec) -> tuple[int, int]:
    """(bytes the whole replay takes, bytes it may take in RAM: ``replay_memory_gb``, at
    most half of this machine's memory)."""
    need = replay_steps(dc, spec) * step_bytes(spec.obs_shape, obs_dtype(spec), spec.action_dim)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return need, int(min(dc.replay_memory_gb * 2**30, ram / 2))


def make_replay(dc: DreamerConfig, spec: EnvSpec, store: EpisodeStore, agent: Dreamer) -> Replay:
    """The RAM ring when the replay fits its budget, else the stream from the episode store
    through an LRU cache of the budget."""
    need, budget = replay_budget(dc, spec)
    gamma = None if dc.repval_return == "lambda" else float(dc.gamma)  # returns to go
    if need <= budget:
        return SequenceReplay(
            replay_steps(dc, spec), spec.obs_shape, obs_dtype(spec), spec.action_dim, gamma
        )
    LOG.info("replay of %.2f GiB > budget %.2f GiB: streaming from %s", need / 2**30,
             budget / 2**30, store.root)  # fmt: skip
    return StreamingReplay(replay_steps(dc, spec), store, agent.action_features, budget, gamma)


def rebuild(
    replay: Replay, store: EpisodeStore, agent: Dreamer, prog: DreamerProgress
) -> DreamerProgress:
    """Fill the replay from the stored episodes; the store decides the counts (an episode
    written just before a kill, after the last checkpoint, is kept and counted once)."""
    env_steps = agent_steps = 0
    indices = store.valid_indices()
    for i, ep in store.iter_episodes(indices):
        replay.add_episode(ep, agent.action_features(ep.actions), i)
        env_steps += int(ep.meta.get("env_steps", ep.length))
        agent_steps += ep.length
    prog.episodes = (indices[-1] + 1) if indices else 0
    prog.env_steps, prog.agent_steps = env_steps, agent_steps
    return prog


def fill_random(
    agent: Dreamer, env: gym.Env, replay: SequenceReplay, rng: np.random.Generator, size: int
) -> np.ndarray:
    """Random-policy steps into an in-memory replay until it holds ``size`` steps, as the
    prefill acts (for measurements and tests) -> the last observation."""
    spec, none = agent.spec, np.zeros(agent.action_dim, np.float32)
    obs, _ = env.reset(seed=0)
    replay.add(obs, none, 0.0, True, False)
    while replay.size < size:
        action = random_action(spec, rng)
        obs, r, term, trunc, _ = env.step(action_to_env(action, spec))
        replay.add(obs, agent.action_features(action[None])[0], float(r), False, bool(term))
        if term or trunc:
            replay.commit(-1)  # returns to go, where the replay keeps them (no bootstrap)
            obs, _ = env.reset()
            replay.add(obs, none, 0.0, True, False)
    return obs
