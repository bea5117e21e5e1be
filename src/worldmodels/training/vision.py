"""Train V on frames from the episode store (beta-VAE, beta annealed, KL tolerance)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from worldmodels.config import Config, to_dict
from worldmodels.data.loaders import frame_batches, observation_stats
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import EnvSpec
from worldmodels.errors import UserError
from worldmodels.models.vision import build_vision
from worldmodels.models.vision.identity import IdentityVision
from worldmodels.models.vision.mlp_ae import MlpAE
from worldmodels.models.vision.mlp_vae import MlpVAE
from worldmodels.models.vision.vq_vae import GRID as VQ_GRID
from worldmodels.models.vision.vq_vae import VQVAE
from worldmodels.runs import model_payload
from worldmodels.training.supervised import Stage, StageData, stage_complete, train_supervised


def vision_kind(cfg: Config, spec: EnvSpec) -> str:
    if cfg.vision.kind != "auto":
        return cfg.vision.kind
    return "conv_vae" if spec.obs_kind == "pixels" else "mlp_vae"


def vision_kwargs(cfg: Config, spec: EnvSpec) -> dict[str, Any]:
    kind = vision_kind(cfg, spec)
    if kind == "vq_vae":
        return _vq_kwargs(cfg, spec)
    if kind == "conv_vae":
        if spec.obs_kind != "pixels":
            raise UserError("vision.kind=conv_vae needs pixel observations; use mlp_vae")
        return {"latent_dim": cfg.vision.latent_dim, "batch_norm": cfg.vision.batch_norm}
    if spec.obs_kind != "vector":
        raise UserError(f"vision.kind={kind} needs vector observations; use conv_vae")
    if kind == "identity":
        return {"obs_dim": spec.obs_shape[0]}
    return {
        "obs_dim": spec.obs_shape[0],
        "latent_dim": cfg.vision.latent_dim,
        "hidden_dims": list(cfg.vision.hidden_dims),
    }


def _vq_kwargs(cfg: Config, spec: EnvSpec) -> dict[str, Any]:
    vc = cfg.vision
    kw: dict[str, Any] = {
        "num_codes": vc.vq_codes,
        "code_dim": vc.vq_dim,
        "commitment": vc.vq_commitment,
        "dead_threshold": vc.vq_dead_threshold,
    }
    if spec.obs_kind == "pixels":
        return kw
    if vc.latent_dim % vc.vq_dim:
        raise UserError(
            f"vision.latent_dim={vc.latent_dim} must be a multiple of vision.vq_dim={vc.vq_dim} "
            "(z is latent_dim / vq_dim code vectors)"
        )
    return kw | {
        "obs_dim": spec.obs_shape[0],
        "latent_dim": vc.latent_dim,
        "hidden_dims": list(vc.hidden_dims),
    }


def latent_size(cfg: Config, spec: EnvSpec) -> int:
    """The size of z that V of this config produces on this env."""
    kind = vision_kind(cfg, spec)
    if kind == "identity":
        return spec.obs_shape[0]
    if kind == "vq_vae" and spec.obs_kind == "pixels":
        return VQ_GRID * VQ_GRID * cfg.vision.vq_dim
    return cfg.vision.latent_dim


DEFAULT_BETA = {
    "conv_vae": 4.0,
    "mlp_vae": 0.05,
    "identity": 0.0,
    "mlp_ae": 0.0,
    "vq_vae": 0.0,
}


def beta_at(cfg: Config, kind: str, epoch: int | None) -> float:
    """Linear warm-up of beta over ``beta_anneal_epochs`` (epoch counts from 0); the full
    beta for ``epoch=None`` (validation)."""
    beta = cfg.vision.beta if cfg.vision.beta is not None else DEFAULT_BETA[kind]
    if cfg.vision.beta_anneal_epochs <= 0 or epoch is None:
        return beta
    return beta * min(1.0, (epoch + 1) / cfg.vision.beta_anneal_epochs)


def train_vision(data: StageData) -> dict[str, float]:
    run, cfg, spec, device = data.ctx.run, data.ctx.cfg, data.ctx.spec, data.ctx.device
    train_idx, val_idx, writer, progress = data.train_idx, data.val_idx, *data.outputs
    if not train_idx:
        raise UserError(f"no training episodes in {run.episodes}; run `worldmodels collect` first")
    store = EpisodeStore(run.episodes)
    kind = vision_kind(cfg, spec)
    kwargs = vision_kwargs(cfg, spec)
    torch.manual_seed(cfg.seed + 100)  # weight init depends on the seed alone
    model = build_vision(kind, kwargs).to(device)
    if isinstance(model, MlpVAE | MlpAE | IdentityVision) or (
        isinstance(model, VQVAE) and not model.pixels
    ):
        mean, std = observation_stats(store, train_idx)
        model.set_normaliser(
            torch.as_tensor(mean, device=device), torch.as_tensor(std, device=device)
        )
    if isinstance(model, IdentityVision):  # nothing to learn: save it as trained, once
        if stage_complete(run, "vision"):  # re-saving would change M's recorded V hash
            return {"loss": 0.0}
        payload = {
            "model": model_payload(kind, kwargs, model),
            "spec": spec.shape_signature(),
            "config": to_dict(cfg),
        }
        run.save("vision/best", {**payload, "progress": {"epoch": 0}})
        run.save("vision/last", {**payload, "progress": {"epoch": 0, "complete": True}})
        return {"loss": 0.0}
    pixels = spec.obs_kind == "pixels"
    fixed = _preview_frames(store, val_idx or train_idx) if pixels else None

    def batches(rng: np.random.Generator):
        for b in frame_batches(
            store, train_idx, cfg.vision.batch_size, rng, cfg.vision.chunk_episodes
        ):
            yield torch.as_tensor(b, device=device)

    def val_batches():
        rng = np.random.default_rng(0)
        for b in frame_batches(
            store, val_idx, cfg.vision.batch_size, rng, cfg.vision.chunk_episodes
        ):
            yield torch.as_tensor(b, device=device)

    def loss(m, batch, epoch: int | None):
        value, metrics = m.loss(batch, beta_at(cfg, kind, epoch), cfg.vision.kl_tolerance)
        metrics["beta"] = beta_at(cfg, kind, epoch)
        return value, metrics

    def log_images(epoch: int, writer: Any) -> None:
        if fixed is None:
            return
        model.eval()
        with torch.no_grad():
            x = torch.as_tensor(fixed, device=device)
            mu, _ = model.encode(x)
            recon = model.postprocess(model.decode(mu)).cpu()
        model.train()
        grid = torch.cat([torch.as_tensor(fixed), recon], dim=1)  # originals over recons
        writer.add_images("vision/reconstruction", grid, epoch, dataformats="NHWC")

    stage = Stage(
        name="vision",
        model=model,
        model_name=kind,
        model_kwargs=kwargs,
        epochs=cfg.vision.epochs,
        lr=cfg.vision.lr,
        grad_clip=0.0,
        train_batches=batches,
        val_batches=val_batches if val_idx else None,
        loss=loss,
        batch_items=lambda b: int(b.shape[0]),
        header={"spec": spec.shape_signature(), "config": to_dict(cfg)},
        on_epoch_end=log_images,
    )
    return train_supervised(run, stage, cfg.seed + 101, writer, progress)


def _preview_frames(store: EpisodeStore, indices: list[int], n: int = 8) -> np.ndarray | None:
    for _, ep in store.iter_episodes(indices[:4]):
        step = max(1, len(ep.observations) // n)
        return ep.observations[::step][:n]
    return None
