"""``--method dreamer``: a DreamerV3-class agent (Hafner et al. 2023). A recurrent
state-space world model (``models/rssm.py``) learns continuously from a replay of every real
step (``data/replay.py``); the actor-critic learns only in imagination
(``training/dreamer/``). Its config is the ``dreamer:`` section
(``training/dreamer/config.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch

from worldmodels.config import Config
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import EnvSpec
from worldmodels.errors import UserError
from worldmodels.methods.base import Context, MethodBase, PolicyFactory, checkpoints, register
from worldmodels.methods.stages import agent_steps, require_agent_resume, timed
from worldmodels.seeding import Stream, reset_seed
from worldmodels.training.dreamer import (
    NS,
    DreamerPolicy,
    dreamer_world,
    load_dreamer,
    record_held_out,
    replay_budget,
    replay_steps,
    train_dreamer,
)
from worldmodels.training.dreamer.config import DreamerConfig
from worldmodels.world_model import WorldModel

HELD_OUT_EPISODES = 10
"""Fresh episodes ``diagnose`` records with a dreamer agent's policy."""


@register
class DreamerMethod(MethodBase):
    """One stage: the agent collects, replays and imagines in one loop (no V/M/C stages)."""

    name = "dreamer"
    summary = "DreamerV3-class: RSSM world model from replay, actor-critic in imagination"
    sections = ("dreamer",)
    own_sections: ClassVar[Mapping[str, type]] = {"dreamer": DreamerConfig}
    artifacts = checkpoints(NS)
    # SB3's PPO learnt more from the RSSM's dream from any replayed state than from episode
    # starts alone: real 500.0 / 341.3 / 491.6 against 492.2 / 182.8 / 409.2 on the
    # CartPole-v1 runs of tuning seeds 100-102 (benchmarks/dream_transfer.py)
    dream_start = "any"

    def dream_length(self, cfg: Config) -> int | None:
        """The agent's own imagination horizon (``dreamer.horizon``): short branches from
        replayed states, truncated (not ended) so a learner bootstraps there. SB3's PPO
        learnt as much or more from them than from 500-step dreams on every CartPole-v1 run
        of tuning seeds 100-102: real 500.0 / 436.0 / 500.0 against 500.0 / 243.3 / 500.0,
        and on run 101 over learner seeds 100-102 a mean of 392 against 308
        (benchmarks/dream_transfer.py)."""
        return cfg.section(DreamerConfig).horizon

    def check(self, cfg: Config, spec: EnvSpec) -> None:
        dc = cfg.section(DreamerConfig)
        pixels = spec.obs_kind == "pixels"
        if dc.encoder == "cnn" and not pixels:
            raise UserError(
                f"dreamer.encoder=cnn needs pixel observations but {spec.env_id} has vectors "
                f"{spec.obs_shape}; use dreamer.encoder=mlp (or auto)"
            )
        if dc.encoder == "mlp" and pixels:
            raise UserError(
                f"dreamer.encoder=mlp needs vector observations but {spec.env_id} has frames "
                f"{spec.obs_shape}; use dreamer.encoder=cnn (or auto)"
            )
        size = int(spec.obs_shape[0])
        if pixels and (spec.obs_shape[1] != size or size < 8 or size & (size - 1)):
            raise UserError(
                f"dreamer's CNN needs square frames a power of 2 wide (8, 16, 32, 64, ...), "
                f"{spec.env_id} gives {spec.obs_shape}; set env.image_size=64 (or 32)"
            )
        need, budget = replay_budget(dc, spec)
        window = dc.batch_size * dc.seq_len * need // max(replay_steps(dc, spec), 1)
        if window > budget:
            raise UserError(
                f"one batch of dreamer's replay ({dc.batch_size} x {dc.seq_len} steps) needs "
                f"{window / 2**30:.3g} GiB, more than dreamer.replay_memory_gb="
                f"{dc.replay_memory_gb:g} (or half this machine's RAM) allows; raise "
                f"dreamer.replay_memory_gb or lower dreamer.batch_size"
            )

    def train(self, ctx: Context, skip: set[str]) -> None:
        if "controller" in skip:
            return
        require_agent_resume(ctx, NS)
        with timed(ctx, NS):
            train_dreamer(ctx)

    def policy(self, ctx: Context) -> PolicyFactory:
        agent = load_dreamer(ctx.run, ctx.cfg, ctx.spec, ctx.device, _which(ctx))
        mode = ctx.cfg.section(DreamerConfig).eval_policy == "mode"
        if not mode:  # the same samples for the same seeds (and evaluate.batch_envs)
            torch.manual_seed(
                reset_seed(ctx.cfg.seed, Stream.EVALUATE, ctx.cfg.evaluate.seed_offset)
            )
        return lambda n: DreamerPolicy(agent, mode)

    def real_env_steps(self, ctx: Context) -> int:
        return agent_steps(ctx, NS)

    def world(self, ctx: Context) -> tuple[WorldModel, str]:
        """The evaluated checkpoint's RSSM as V + M: its latent is the model state [h, z]."""
        if not ctx.run.has(f"{NS}/best"):
            raise UserError(
                f"{ctx.run.root} has no trained dreamer agent; run `worldmodels train "
                f"--method dreamer --run-dir {ctx.run.root}` first"
            )
        which = _which(ctx)
        return dreamer_world(load_dreamer(ctx.run, ctx.cfg, ctx.spec, ctx.device, which)), (
            f"{NS}/{which}"
        )

    def held_out(self, ctx: Context, scratch: Path) -> tuple[EpisodeStore, list[int], bool]:
        """Every stored episode went into the replay: ``HELD_OUT_EPISODES`` fresh episodes
        of the agent and as many of the random policy (whose episodes end) are recorded into
        ``scratch`` instead (not kept in the run)."""
        agent = load_dreamer(ctx.run, ctx.cfg, ctx.spec, ctx.device, _which(ctx))
        store = EpisodeStore(scratch)
        return store, record_held_out(agent, ctx.cfg, store, HELD_OUT_EPISODES), False


def _which(ctx: Context) -> str:
    """The checkpoint the run is evaluated with (``dreamer.eval_checkpoint``)."""
    return ctx.cfg.section(DreamerConfig).eval_checkpoint
