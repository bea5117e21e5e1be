"""Train M (MDN-RNN + reward and done heads) on latents cached for the current V."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from worldmodels.config import Config, to_dict
from worldmodels.data.loaders import LatentCache, StartStates, encode_missing, sequence_batches
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import EnvSpec
from worldmodels.errors import TrainingDivergedError, UserError
from worldmodels.models.memory import build_memory
from worldmodels.models.memory.base import MemoryBatch, MemoryModel, State
from worldmodels.runs import RunDir, model_payload
from worldmodels.training.supervised import Stage, StageData, train_supervised
from worldmodels.world_model import WorldModel, load_vision

LOG = logging.getLogger(__name__)


def memory_kwargs(cfg: Config, spec: EnvSpec) -> dict[str, Any]:
    from worldmodels.training.vision import latent_size

    mc = cfg.memory
    latent = latent_size(cfg, spec)
    base: dict[str, Any] = {
        "latent_dim": latent,
        "action_dim": spec.action_dim,
        "hidden_dim": mc.hidden_dim,
        "ensemble": mc.ensemble,
    }
    # only where not the default: the kwargs of runs made before it stay as they were
    heads = {} if mc.heads == "hidden" else {"heads_read": mc.heads}
    if mc.kind == "mdn_rnn":
        return base | {"num_mixtures": mc.num_mixtures} | heads
    if mc.kind == "transformer":
        return (
            base
            | {
                "num_mixtures": mc.num_mixtures,
                "layers": mc.attn_layers,
                "heads": mc.attn_heads,
                "max_len": mc.max_len,
            }
            | heads
        )
    modes = {
        "mode": mc.train_mode,
        "rollout_steps": mc.rollout_steps,
        "step_weights": list(mc.step_weights),
        "feature_weights": list(mc.feature_weights),
        "tf_start": mc.tf_start,
        "tf_decay": mc.tf_decay,
        "tf_mix": mc.tf_mix,
        "curriculum_epochs": mc.curriculum_epochs,
    }
    if mc.kind == "residual_mlp":
        return base | modes | {"blocks": mc.blocks, "scale": mc.residual_scale}
    return base | modes


def carried_states(model: MemoryModel, device: torch.device) -> StartStates:
    """M's state at each window start, run from the episode's first step under the current
    weights -- the state acting reaches there."""

    @torch.no_grad()
    def states(z: np.ndarray, acts: np.ndarray, starts: list[int]) -> list[State]:
        zs = torch.as_tensor(z[None], device=device)
        at = torch.as_tensor(acts[None], device=device)
        state, t, out = model.initial(1, device), 0, []
        for s0 in starts:
            if s0 > t:
                state, t = model.advance(zs[:, t:s0], at[:, t:s0], state), s0
            out.append(state)
        return out

    return states


def _sequences(
    cache: LatentCache,
    indices: list[int],
    cfg: Config,
    spec: EnvSpec,
    rng: np.random.Generator,
    sample: bool,
    model: MemoryModel,
    device: torch.device,
) -> Iterator[MemoryBatch]:
    """Windows of ``memory.seq_len`` steps of the cached latents, ``memory.batch_size`` each,
    starting from M's carried state where ``memory.carry_state`` and M is recurrent."""
    mc = cfg.memory
    carry = carried_states(model, device) if mc.carry_state and model.recurrent else None
    return sequence_batches(cache, indices, mc, spec, rng, sample, device, carry)


def _loss_at(
    model: MemoryModel, batch: Any, epoch: int | None, reward_weight: float, done_weight: float
):
    model.set_epoch(epoch)  # teacher-forcing and curriculum schedules
    return model.loss(batch, reward_weight, done_weight)


def train_memory(data: StageData) -> dict[str, float]:
    run, cfg, spec, device = data.ctx.run, data.ctx.cfg, data.ctx.spec, data.ctx.device
    train_idx, val_idx, writer, progress = data.train_idx, data.val_idx, *data.outputs
    vision = load_vision(run, spec, device)  # first: a damaged V is V's error, not M's
    vision_hash = run.digest("vision/best")
    recorded = run.load("memory/last").get("vision_sha256") if run.has("memory/last") else None
    if recorded is not None and not run.made_from(recorded, "vision/best"):
        moved = run.set_aside("memory", "stale")
        LOG.warning("M was trained on another V; moved it to %s and training M afresh", moved)
    cache = LatentCache(run.latents, vision_hash)
    encode_missing(
        cache, EpisodeStore(run.episodes), train_idx + val_idx, vision, device, progress=progress
    )
    train_idx = [i for i in train_idx if cache.has(i)]
    val_idx = [i for i in val_idx if cache.has(i)]
    if not train_idx:
        raise UserError("no episodes could be encoded for memory training; re-run collect")
    kwargs = memory_kwargs(cfg, spec)
    torch.manual_seed(cfg.seed + 200)  # weight init depends on the seed alone
    model = build_memory(cfg.memory.kind, kwargs).to(device)
    mc = cfg.memory

    def batches(
        rng: np.random.Generator, indices: list[int] = train_idx, sample: bool = mc.sample_latents
    ):
        return _sequences(cache, indices, cfg, spec, rng, sample, model, device)

    stage = Stage(
        name="memory",
        model=model,
        model_name=cfg.memory.kind,
        model_kwargs=kwargs,
        epochs=mc.epochs,
        lr=mc.lr,
        grad_clip=mc.grad_clip,
        train_batches=batches,
        val_batches=(lambda: batches(np.random.default_rng(0), val_idx, False))
        if val_idx
        else None,
        loss=lambda m, b, epoch: _loss_at(model, b, epoch, mc.reward_weight, mc.done_weight),
        patience=mc.patience,
        batch_items=lambda b: int(b.mask.sum()),
        header={
            "spec": spec.shape_signature(),
            "config": to_dict(cfg),
            "vision_sha256": vision_hash,
        },
    )
    return train_supervised(run, stage, cfg.seed + 202, writer, progress)


def finetune_memory(
    run: RunDir,
    cfg: Config,
    spec: EnvSpec,
    world: WorldModel,
    indices: list[int],
    epochs: int,
    seed: int,
    progress: bool = False,
) -> dict[str, float]:
    """Continue training ``world.memory`` (in place) on the episodes ``indices`` -- all real
    data gathered so far -- and save it as ``memory/best`` (wm-ppo's periodic retraining).
    V stays fixed, so cached latents stay valid and new episodes are encoded once."""
    vision_hash = run.digest("vision/best")
    cache = LatentCache(run.latents, vision_hash)
    encode_missing(
        cache, EpisodeStore(run.episodes), indices, world.vision, world.device, progress=progress
    )
    indices = [i for i in indices if cache.has(i)]
    mc = cfg.memory
    model = world.memory
    opt = torch.optim.Adam(model.parameters(), lr=mc.lr)
    rng = np.random.default_rng(seed)
    model.train()
    totals: dict[str, float] = {}
    count = 0
    for _ in range(epochs):
        for batch in _sequences(
            cache, indices, cfg, spec, rng, mc.sample_latents, model, world.device
        ):
            loss, parts = model.loss(batch, mc.reward_weight, mc.done_weight)
            if not torch.isfinite(loss):
                model.eval()
                raise TrainingDivergedError(
                    "the memory loss is not finite while retraining M; the last good "
                    "checkpoint was kept"
                )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), mc.grad_clip)
            opt.step()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
    model.eval()
    run.save(
        "memory/best",
        {
            "model": model_payload(mc.kind, memory_kwargs(cfg, spec), model),
            "spec": spec.shape_signature(),
            "config": to_dict(cfg),
            "vision_sha256": vision_hash,
            "progress": {"retrained_on_episodes": len(indices), "complete": True},
        },
    )
    return {k: v / max(count, 1) for k, v in totals.items()}
