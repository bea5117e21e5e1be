"""Train V and M together with one loss (``memory.joint``; the ``latent-mlp`` preset).

On raw observation sequences o_0..o_T: z_t = V.encode(o_t) with gradient; the loss is V's own
loss (reconstruction; for a VAE also beta * KL) plus M's loss on the z sequence, whose inputs
carry gradient into V's encoder while its next-latent targets are detached
(``encode(obs_next).detach()``). The stage checkpoints both as ``world/last`` / ``world/best``
(resumable like any stage); when it completes, the best pair is exported as ``vision/best`` and
``memory/best`` so that every later stage (controllers, dream, diagnose) reads them as usual.
V starts from ``vision/best``: trained for ``vision.epochs`` first (pre-training), or untrained
with ``vision.epochs=0`` (everything trained from scratch, as the ``latent-mlp`` preset does).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from worldmodels.config import Config, to_dict
from worldmodels.data.loaders import observation_sequences
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import EnvSpec
from worldmodels.errors import UserError
from worldmodels.models.memory import build_memory
from worldmodels.models.memory.base import MemoryBatch, MemoryModel
from worldmodels.models.vision.base import VisionModel
from worldmodels.runs import RunDir, model_payload
from worldmodels.training.memory import memory_kwargs
from worldmodels.training.supervised import Stage, StageData, train_supervised
from worldmodels.training.vision import beta_at, vision_kind
from worldmodels.world_model import load_vision


class JointWorld(nn.Module):
    def __init__(self, vision: VisionModel, memory: MemoryModel):
        super().__init__()
        self.vision, self.memory = vision, memory

    def loss(
        self,
        batch: MemoryBatch,
        beta: float,
        kl_tolerance: float,
        reward_weight: float,
        done_weight: float,
        epoch: int | None,
    ) -> tuple[Tensor, dict[str, float]]:
        obs = batch.z  # raw observations [B, T+1, *obs]
        b, t1 = obs.shape[:2]
        flat = obs.reshape(b * t1, *obs.shape[2:])
        frames = torch.cat([batch.mask.new_ones(b, 1), batch.mask], 1).reshape(-1) > 0
        v_loss, v_parts = self.vision.loss(flat[frames], beta, kl_tolerance)
        z, _ = self.vision.encode(flat)
        z = z.view(b, t1, -1)
        self.memory.set_epoch(epoch)
        m_loss, m_parts = self.memory.loss(
            batch._replace(z=z, z_target=z.detach()), reward_weight, done_weight
        )
        total = v_loss + m_loss
        parts = {f"vision_{k}": v for k, v in v_parts.items()}
        parts |= {f"memory_{k}": v for k, v in m_parts.items()}
        return total, parts | {"loss": float(total.detach())}


def train_joint(data: StageData) -> dict[str, float]:
    run, cfg, spec, device = data.ctx.run, data.ctx.cfg, data.ctx.spec, data.ctx.device
    train_idx, val_idx, writer, progress = data.train_idx, data.val_idx, *data.outputs
    if not train_idx:
        raise UserError(f"no training episodes in {run.episodes}; run `worldmodels collect` first")
    kind = vision_kind(cfg, spec)
    if kind == "identity":
        raise UserError(
            "memory.joint trains V with M, but vision.kind=identity has nothing to train; "
            "use vision.kind=mlp_ae (the latent-mlp preset) or mlp_vae, or memory.joint=false"
        )
    vision_payload = run.load("vision/best")["model"]
    vision = load_vision(run, spec, device)
    m_kwargs = memory_kwargs(cfg, spec)
    torch.manual_seed(cfg.seed + 200)
    memory = build_memory(cfg.memory.kind, m_kwargs).to(device)
    model = JointWorld(vision, memory)
    mc = cfg.memory
    store = EpisodeStore(run.episodes)
    kwargs = {
        "vision": {"name": vision_payload["name"], "kwargs": vision_payload["kwargs"]},
        "memory": {"name": mc.kind, "kwargs": m_kwargs},
    }

    def batches(rng: np.random.Generator, indices: list[int] = train_idx):
        return observation_sequences(store, indices, mc, spec, rng, device)

    def loss(m: nn.Module, batch: MemoryBatch, epoch: int | None):
        beta = beta_at(cfg, kind, epoch)
        return model.loss(
            batch, beta, cfg.vision.kl_tolerance, mc.reward_weight, mc.done_weight, epoch
        )

    stage = Stage(
        name="world",
        model=model,
        model_name="joint",
        model_kwargs=kwargs,
        epochs=mc.epochs,
        lr=mc.lr,
        grad_clip=mc.grad_clip,
        train_batches=batches,
        val_batches=(lambda: batches(np.random.default_rng(0), val_idx)) if val_idx else None,
        loss=loss,
        patience=mc.patience,
        batch_items=lambda b: int(b.mask.sum()),
        header={"spec": spec.shape_signature(), "config": to_dict(cfg)},
    )
    metrics = train_supervised(run, stage, cfg.seed + 203, writer, progress)
    export_joint(run, cfg, spec, model, kwargs)
    return metrics


def export_joint(
    run: RunDir, cfg: Config, spec: EnvSpec, model: JointWorld, kwargs: dict[str, Any]
) -> None:
    """Write ``world/best``'s V and M as ``vision/best`` and ``memory/best`` (+ ``last``) once
    per completed joint stage: re-running a finished stage rewrites nothing, so checkpoints
    that consumed V's hash stay valid."""
    last = run.load("world/last")
    if not last["progress"].get("complete"):
        return
    best = run.load("world/best")
    epoch = int(best["progress"]["epoch"])
    if run.has("memory/best") and run.load("memory/best")["progress"].get("world_epoch") == epoch:
        return
    model.load_state_dict(best["model"]["state_dict"])
    header = {"spec": spec.shape_signature(), "config": to_dict(cfg)}
    progress = {"epoch": epoch, "complete": True, "world_epoch": epoch, "joint": True}
    v = kwargs["vision"]
    vision_payload = {**header, "model": model_payload(v["name"], v["kwargs"], model.vision)}
    run.save("vision/best", {**vision_payload, "progress": progress})  # vision/last: pre-training
    m = kwargs["memory"]
    memory_payload = {
        **header,
        "model": model_payload(m["name"], m["kwargs"], model.memory),
        "vision_sha256": run.digest("vision/best"),
    }
    run.save("memory/best", {**memory_payload, "progress": progress})
    run.save("memory/last", {**memory_payload, "progress": progress})
