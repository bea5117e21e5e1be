"""``--method dream``: random rollouts -> V -> M -> C by CMA-ES inside the dream only (the
paper's VizDoom experiment); the real env is used for collection and the final evaluation.
With ``dream.iterations > 1``, the paper's iterative procedure: the controller collects real
episodes, M is retrained on all of them, a new controller is trained in the new dream.

Crash-safe: the number of finished iterations is in ``dream_iterations.json``, written before
the finished controller is archived as ``checkpoints/controller_iter<k>``."""

from __future__ import annotations

import json
from typing import Any

from worldmodels.controllers.linear import PolicyShape
from worldmodels.data.loaders import LatentCache, encode_missing
from worldmodels.data.store import EpisodeStore
from worldmodels.dream import StartStates, dream_horizon, start_states
from worldmodels.errors import UserError
from worldmodels.methods.base import Context, get, register
from worldmodels.methods.classic import Classic
from worldmodels.methods.stages import (
    STAGES,
    collect_into,
    require_resume,
    split,
    timed,
    world_model,
)
from worldmodels.runs import atomic_write_json
from worldmodels.training.cmaes import train_cmaes
from worldmodels.training.dream import DreamEvaluator
from worldmodels.training.memory import finetune_memory
from worldmodels.world_model import WorldModel


def dream_parts(ctx: Context) -> tuple[WorldModel, StartStates]:
    """The trained world model and the real states dreams start from (training split)."""
    world, keyed_by = get(ctx.cfg.method).world(ctx)
    cache = LatentCache(ctx.run.latents, ctx.run.digest(keyed_by))
    train, _ = split(ctx)
    store = EpisodeStore(ctx.run.episodes)
    encode_missing(cache, store, train, world.vision, ctx.device, progress=ctx.progress)
    train = [i for i in train if cache.has(i)]
    if not train:
        raise UserError(
            f"no encoded episodes in {ctx.run.root} to start dreams from; re-run collect"
        )
    starts = start_states(world, cache, train, ctx.cfg.dream.start_states, ctx.cfg.seed + 404)
    return world, starts


def stage_dream_controller(ctx: Context) -> dict[str, Any]:
    """CMA-ES with fitness measured only inside the dream: no real env step."""
    require_resume(ctx, "controller")
    world, starts = dream_parts(ctx)
    dc = ctx.cfg.dream

    def make(shape: PolicyShape) -> DreamEvaluator:
        return DreamEvaluator(
            world,
            starts,
            shape,
            dream_horizon(ctx.cfg, ctx.spec),
            ctx.cfg.memory.temperature,
            dc.start == "initial",
            dc.done_mode,
        )

    with timed(ctx, "controller"):
        return train_cmaes(ctx, world, make, dc.rollouts, dc.eval_episodes)


def _archive_controller(ctx: Context, k: int) -> None:
    src, dst = ctx.run.checkpoints / "controller", ctx.run.checkpoints / f"controller_iter{k}"
    if k and src.exists() and not dst.exists():
        src.rename(dst)


def _dream_iteration(ctx: Context, k: int) -> None:
    """Collect real episodes with the current controller, then retrain M on all data."""
    target = ctx.cfg.collect.episodes + k * ctx.cfg.dream.collect_episodes
    with timed(ctx, "collect"):
        collect_into(ctx, target, str(ctx.run.root))
    train_idx, _ = split(ctx)
    with timed(ctx, "memory"):
        finetune_memory(
            ctx.run,
            ctx.cfg,
            ctx.spec,
            world_model(ctx),
            train_idx,
            ctx.cfg.dream.retrain_epochs,
            ctx.cfg.seed + 900 + k,
            ctx.progress,
        )


@register
class Dream(Classic):
    """Acts and counts real steps as classic does; trains C in the dream."""

    name = "dream"
    summary = "CMA-ES only inside the dream"
    sections = ("controller", "dream")

    def train(self, ctx: Context, skip: set[str]) -> None:
        for name in ("collect", "vision", "memory"):
            if name not in skip:
                STAGES[name](ctx)
        if "controller" in skip:
            return
        state_path = ctx.run.root / "dream_iterations.json"
        done = json.loads(state_path.read_text())["completed"] if state_path.exists() else 0
        while True:
            _archive_controller(ctx, done)  # finish an archive a crash interrupted
            stage_dream_controller(ctx)
            if done + 1 >= ctx.cfg.dream.iterations:
                return
            done += 1
            _dream_iteration(ctx, done)
            atomic_write_json(state_path, {"completed": done})
            _archive_controller(ctx, done)
