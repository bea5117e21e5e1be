"""Can I trust this model k steps ahead? Open-loop multi-step prediction on held-out episodes.

From many start points t of episodes never used for training, M is teacher-forced along the
real latents up to t, then rolled forward k = 1..H steps *open loop* (its own mean
predictions, tau = 0) under the logged real actions, through ``WorldModel.imagine``. Per k:

- MSE in latent space against V's encoding of the real observation at t + k;
- where V has a decoder, MSE in observation space (per feature for vector observations; pixels
  in [0, 1]);
- reward MAE, done BCE and accuracy (p > 0.5);
- the same errors for two naive predictors -- repeat the last observation, and constant
  velocity x_t + k (x_t - x_{t-1}) -- and the model's error as a ratio to them;
- V's reconstruction MSE on the same frames (seed 004's three evaluations: prediction,
  reward, reconstruction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodels.data.loaders import LatentCache
from worldmodels.data.store import EpisodeStore
from worldmodels.world_model import WorldModel


@dataclass
class Starts:
    """B open-loop start points, with everything needed to score H steps from each."""

    z0: Tensor  # [B, Z] z_t
    z_prev: Tensor  # [B, Z] z_{t-1}
    state: tuple[Tensor, ...]  # M's state at t (teacher forced)
    actions: Tensor  # [B, H] or [B, H, A] logged a_t .. a_{t+H-1}
    z_true: Tensor  # [B, H, Z] z_{t+1} .. z_{t+H}
    obs0: Tensor  # [B, *obs] x_t
    obs_prev: Tensor  # [B, *obs] x_{t-1}
    obs_true: Tensor  # [B, H, *obs] x_{t+1} .. x_{t+H}
    rewards: Tensor  # [B, H] r_t .. r_{t+H-1}
    dones: Tensor  # [B, H] terminated flags


@torch.no_grad()
def gather_starts(
    world: WorldModel,
    store: EpisodeStore,
    cache: LatentCache,
    indices: list[int],
    horizon: int,
    max_starts: int,
    seed: int = 0,
) -> Starts:
    """Start points t in [1, T - H] of each episode (subsampled to ``max_starts``)."""
    rows: dict[str, list[Any]] = {k: [] for k in Starts.__dataclass_fields__}
    dev = world.device
    for i in indices:
        lat = cache.read(i)
        ep = store.read(i)
        t_len = len(lat["rewards"])
        if t_len - horizon < 1:
            continue
        z = torch.as_tensor(lat["mu"], device=dev)
        acts = torch.as_tensor(lat["actions"], device=dev)
        state = world.initial(1)
        states = []
        for t in range(t_len - horizon + 1):
            states.append(state)
            _, state = world.memory.step(
                z[t : t + 1], world.action_features(acts[t : t + 1]), state
            )
        obs = torch.as_tensor(np.asarray(ep.observations), device=dev)
        for t in range(1, t_len - horizon + 1):
            rows["z0"].append(z[t])
            rows["z_prev"].append(z[t - 1])
            rows["state"].append(states[t])
            rows["actions"].append(acts[t : t + horizon])
            rows["z_true"].append(z[t + 1 : t + 1 + horizon])
            rows["obs0"].append(obs[t])
            rows["obs_prev"].append(obs[t - 1])
            rows["obs_true"].append(obs[t + 1 : t + 1 + horizon])
            rows["rewards"].append(torch.as_tensor(lat["rewards"][t : t + horizon]))
            rows["dones"].append(torch.as_tensor(lat["terminated"][t : t + horizon]))
    n = len(rows["z0"])
    if n == 0:
        raise ValueError("no held-out episode is long enough for this horizon")
    pick = np.sort(np.random.default_rng(seed).permutation(n)[:max_starts])
    out: dict[str, Any] = {}
    for key, values in rows.items():
        chosen = [values[j] for j in pick]
        if key == "state":
            out[key] = tuple(torch.cat([s[p] for s in chosen]) for p in range(len(chosen[0])))
        else:
            out[key] = torch.stack(chosen).to(dev)
    return Starts(**out)


def _obs_space(world: WorldModel, obs: Tensor) -> Tensor:
    """Observations as errors are measured: raw floats (vectors), [0, 1] pixels [.., 3, H, W]."""
    if world.spec.obs_kind == "pixels":
        return world.vision.preprocess(obs.reshape(-1, *obs.shape[-3:])).reshape(
            *obs.shape[:-3], 3, obs.shape[-3], obs.shape[-2]
        )
    return obs.float()


def _decode(world: WorldModel, z: Tensor) -> Tensor:
    flat = z.reshape(-1, z.shape[-1])
    x = world.vision.decode(flat)
    x = x.clamp(0, 1) if world.spec.obs_kind == "pixels" else world.vision.postprocess(x)
    return x.reshape(*z.shape[:-1], *x.shape[1:])


def _per_k(err: Tensor) -> list[float]:
    """[B, H, ...] squared/absolute errors -> the mean per k."""
    return err.reshape(err.shape[0], err.shape[1], -1).mean((0, 2)).tolist()


@torch.no_grad()
def open_loop(world: WorldModel, s: Starts) -> dict[str, Any]:
    h = s.actions.shape[1]
    out = world.imagine(
        s.z0, s.state, lambda f, t: s.actions[:, t], h, temperature=0.0, done_mode="threshold"
    )
    z_pred = out.features[:, 1:, : world.vision.latent_dim]
    k = torch.arange(1, h + 1, device=z_pred.device, dtype=z_pred.dtype).view(1, h, 1)
    vel = s.z0 - s.z_prev
    latent = {
        "model": _per_k((z_pred - s.z_true).pow(2)),
        "repeat_last": _per_k((s.z0[:, None] - s.z_true).pow(2)),
        "constant_velocity": _per_k((s.z0[:, None] + k * vel[:, None] - s.z_true).pow(2)),
    }
    result: dict[str, Any] = {"horizon": h, "starts": int(s.z0.shape[0]), "latent_mse": latent}
    x_true = _obs_space(world, s.obs_true)
    x0 = _obs_space(world, s.obs0)
    x_prev = _obs_space(world, s.obs_prev)
    x_pred = _decode(world, z_pred)
    kk = k.view(1, h, *([1] * (x_true.dim() - 2)))
    obs_err = {
        "model": (x_pred - x_true).pow(2),
        "repeat_last": (x0[:, None] - x_true).pow(2),
        "constant_velocity": (x0[:, None] + kk * (x0 - x_prev)[:, None] - x_true).pow(2),
    }
    result["obs_mse"] = {name: _per_k(e) for name, e in obs_err.items()}
    if world.spec.obs_kind == "vector":
        result["obs_mse_per_feature"] = {
            name: e.mean(0).T.tolist() for name, e in obs_err.items()
        }  # [feature][k]
    for space in ("latent_mse", "obs_mse"):
        m = np.asarray(result[space]["model"])
        result[f"{space}_ratio"] = {
            base: (m / np.maximum(np.asarray(result[space][base]), 1e-12)).tolist()
            for base in ("repeat_last", "constant_velocity")
        }
    rewards = s.rewards.float()
    dones = s.dones.float()
    result["reward_mae"] = _per_k((out.rewards - rewards).abs())
    p = out.done_prob.clamp(1e-6, 1 - 1e-6)
    result["done_bce"] = _per_k(F.binary_cross_entropy(p, dones, reduction="none"))
    result["done_accuracy"] = _per_k(((p > 0.5).float() == dones).float())
    result["uncertainty"] = _per_k(out.uncertainty)  # ensemble disagreement (0: one model)
    result["reconstruction_mse"] = float((_decode(world, s.z0) - x0).pow(2).mean())
    result["_scatter"] = {
        "feature0": (
            x_pred[:, 0].reshape(len(x_pred), -1)[:, 0],
            x_true[:, 0].reshape(len(x_true), -1)[:, 0],
        ),
        "reward": (out.rewards[:, 0], rewards[:, 0]),
        "done": (out.done_prob[:, 0], dones[:, 0]),
    }
    return result


@torch.no_grad()
def prediction_video(world: WorldModel, s: Starts, path: Any, which: int = 0) -> None:
    """Pixel envs: one held-out start as a gif of columns over time, rows truth / prediction /
    |error|; the first frame is V's reconstruction of x_t, the rest are imagined by M."""
    import imageio.v2 as imageio

    h = s.actions.shape[1]
    out = world.imagine(
        s.z0[which : which + 1],
        tuple(x[which : which + 1] for x in s.state),
        lambda f, t: s.actions[which : which + 1, t],
        h,
        temperature=0.0,
        done_mode="threshold",
    )
    z = torch.cat([s.z0[which : which + 1], out.features[0, 1:, : world.vision.latent_dim]])
    pred = world.vision.postprocess(world.vision.decode(z)).cpu().numpy()  # [H+1, 64, 64, 3]
    truth = torch.cat([s.obs0[which : which + 1], s.obs_true[which]]).cpu().numpy()
    frames: list[Any] = []
    for t in range(h + 1):
        err = np.abs(truth[t].astype(np.int16) - pred[t].astype(np.int16)).astype(np.uint8)
        frames.append(np.concatenate([truth[t], pred[t], err], axis=0))
    imageio.mimsave(path, frames, duration=0.2, loop=0)
