"""What a Dreamer run keeps and hands on: the loop's counters (``DreamerProgress``), the
``dreamer/best`` and ``dreamer/last`` payloads, loading an agent back for evaluation, the
agent's RSSM as the toolkit's world model, and fresh held-out episodes for ``diagnose``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worldmodels.config import Config
from worldmodels.data.rollout import Policy, RandomPolicy, run_episode
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import EnvSpec, make_env
from worldmodels.models.rssm_views import ActionScale, RssmMemory, RssmVision
from worldmodels.runs import RunDir, np_rng_state
from worldmodels.seeding import Stream, reset_seed
from worldmodels.training.agent_io import rng_state as torch_rng_state
from worldmodels.training.dreamer.agent import Dreamer, DreamerPolicy
from worldmodels.training.dreamer.config import DreamerConfig
from worldmodels.training.scoring import AgentProgress
from worldmodels.world_model import WorldModel

NS = "dreamer"
"""The agent's checkpoints: ``dreamer/best`` and ``dreamer/last``."""


@dataclass
class DreamerProgress(AgentProgress):
    """The loop's counters, saved in ``dreamer/last``; ``iteration`` counts episodes."""

    episodes: int = 0
    agent_steps: int = 0
    """Steps the agent took (one per action; the train ratio counts these)."""
    updates: int = 0
    credit: float = 0.0
    """Updates owed by the train ratio, not yet made."""
    holding: bool = False
    """The agent is held fixed (``dreamer.stop_confirm``)."""
    held: int = 0
    """Scored episodes in a row the held agent played at the target."""


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return {**torch_rng_state(), "numpy": np_rng_state(rng)}


def payload(
    agent: Dreamer, spec: EnvSpec, prog: DreamerProgress, rng: np.random.Generator, training: bool
) -> dict[str, Any]:
    """A checkpoint: the networks and counters (``dreamer/best``), and with ``training`` what
    a bit-exact resume needs besides (``dreamer/last``: optimisers, random states)."""
    out = {"spec": spec.shape_signature(), "progress": dataclasses.asdict(prog), **agent.state()}
    if training:
        out.update(agent.training_state())
        out["rng"] = rng_state(rng)
    return out


def load_dreamer(
    run: RunDir, cfg: Config, spec: EnvSpec, device: torch.device, which: str
) -> Dreamer:
    """The agent of ``dreamer/<which>`` (best or last), for evaluation."""
    saved = run.load(f"{NS}/{which}")
    agent = Dreamer(cfg.section(DreamerConfig), spec, device)
    agent.load(saved)
    return agent


def dreamer_world(agent: Dreamer) -> WorldModel:
    """The agent's RSSM as the toolkit's V + M (``models/rssm_views.py``)."""
    spec = agent.spec
    continuous = spec.action_kind != "discrete"
    scale = ActionScale(spec.action_low, spec.action_high) if continuous else ActionScale()
    pixels = spec.obs_kind == "pixels"
    return WorldModel(
        RssmVision(agent.wm, pixels, spec.action_dim, scale),
        RssmMemory(agent.wm, spec.action_dim, scale),
        spec,
        agent.device,
    )


def record_held_out(
    agent: Dreamer, cfg: Config, store: EpisodeStore, episodes: int
) -> list[int]:  # fmt: skip
    """``episodes`` fresh real episodes of the agent's deterministic policy, then as many of
    the uniformly random policy, written to ``store`` (seeds no training episode used): the
    RSSM never trained on them. The random policy's episodes end where the env can end, so
    the continue head's precision and recall are measured where the agent never fails."""
    random = RandomPolicy(agent.spec, np.random.default_rng(cfg.seed))
    policies: list[Policy] = [DreamerPolicy(agent)] * episodes + [random] * episodes
    env = make_env(cfg.env)
    try:
        for k, policy in enumerate(policies):
            seed = reset_seed(cfg.seed, Stream.HELD_OUT, k)
            store.write(k, run_episode(env, agent.spec, policy, seed))
    finally:
        env.close()
    return list(range(len(policies)))
