"""Can I trust this model k steps ahead? Open-loop multi-step prediction on held-out episodes.

From many start points t of episodes never used for training -- anywhere in an episode, so
episode ends appear at every k -- M is teacher-forced along the real latents up to t, then
rolled forward k = 1..H steps *open loop* under the logged real actions, through
``WorldModel.imagine``: its mean prediction (``predict``: the tau = 0 path of a Gaussian M, the
mean of sampled rollouts of the RSSM's categorical latents). Steps past the episode's end are
masked out of every mean. Per k:

- MSE in latent space against V's encoding of the real observation at t + k;
- where V has a decoder, MSE in observation space (per feature for vector observations; pixels
  in [0, 1]);
- reward MAE, done BCE, accuracy, precision, recall and balanced accuracy of p > 0.5, beside
  the accuracy of the constant "never done" predictor (whose balanced accuracy is 0.5);
- the same errors for two naive predictors -- repeat the last observation, and constant
  velocity x_t + k (x_t - x_{t-1}) -- and the model's error as a ratio to them;
- V's reconstruction MSE on the same frames (the joint latent-MLP world model's three
  evaluations: prediction, reward, reconstruction).
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
    mask: Tensor  # [B, H] 1 where step t + k exists (0 past the episode's end)


def _window(x: Tensor, start: int, length: int) -> Tensor:
    """x[start : start + length], padded by repeating its last row (masked out later)."""
    part = x[start : start + length]
    if len(part) < length:
        part = torch.cat([part, part[-1:].expand(length - len(part), *part.shape[1:])])
    return part


@torch.no_grad()
def gather_starts(
    world: WorldModel,
    store: EpisodeStore,
    cache: LatentCache,
    indices: list[int],
    horizon: int,
    max_starts: int,
    seed: int = 0,
    min_start: int = 1,
) -> Starts:
    """Start points t in [min_start, T - 1] of each episode (subsampled to ``max_starts``),
    M's state at t teacher-forced from the episode's first step; the steps of a start's
    horizon past the episode's end are padded and masked."""
    rows: dict[str, list[Any]] = {k: [] for k in Starts.__dataclass_fields__}
    dev = world.device
    for i in indices:
        lat = cache.read(i)
        ep = store.read(i)
        t_len = len(lat["rewards"])
        if t_len < 2:
            continue
        z = torch.as_tensor(lat["mu"], device=dev)
        acts = torch.as_tensor(lat["actions"], device=dev)
        rewards = torch.as_tensor(lat["rewards"])
        dones = torch.as_tensor(lat["terminated"])
        state = world.initial(1)
        states = []
        for t in range(t_len):
            states.append(state)
            _, state = world.memory.step(
                z[t : t + 1], world.action_features(acts[t : t + 1]), state
            )
        obs = torch.as_tensor(np.asarray(ep.observations), device=dev)
        for t in range(max(min_start, 1), t_len):
            rows["z0"].append(z[t])
            rows["z_prev"].append(z[t - 1])
            rows["state"].append(states[t])
            rows["actions"].append(_window(acts, t, horizon))
            rows["z_true"].append(_window(z, t + 1, horizon))
            rows["obs0"].append(obs[t])
            rows["obs_prev"].append(obs[t - 1])
            rows["obs_true"].append(_window(obs, t + 1, horizon))
            rows["rewards"].append(_window(rewards, t, horizon))
            rows["dones"].append(_window(dones, t, horizon))
            rows["mask"].append(torch.arange(t, t + horizon) < t_len)
    n = len(rows["z0"])
    if n == 0:
        raise ValueError(f"no held-out episode has a step past {min_start}")
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


def ratio(model: Any, base: Any) -> np.ndarray:
    """A model's errors over a baseline's, elementwise (a baseline error of 0 counts as 1e-12)."""
    return np.asarray(model) / np.maximum(np.asarray(base), 1e-12)


def feature_ratios(per_feature: dict[str, Any]) -> list[np.ndarray]:
    """Per observation feature of ``obs_mse_per_feature``, the model's MSE over repeat-last's
    at each k."""
    pairs = zip(per_feature["model"], per_feature["repeat_last"], strict=True)
    return [ratio(m, b) for m, b in pairs]


def _per_k(err: Tensor, mask: Tensor) -> list[float]:
    """[B, H, ...] squared/absolute errors -> the mean per k over the steps that exist."""
    per = err.reshape(err.shape[0], err.shape[1], -1).mean(2)
    m = mask.to(per.dtype)
    return ((per * m).sum(0) / m.sum(0).clamp(min=1)).tolist()


def _done_scores(pred: Tensor, truth: Tensor, mask: Tensor) -> dict[str, list[float]]:
    """Per k: accuracy, precision, recall and balanced accuracy of the done prediction, and
    the accuracy of the constant "never done" predictor (balanced accuracy 0.5)."""
    m = mask.float()
    tp = (pred * truth * m).sum(0)
    fp = (pred * (1 - truth) * m).sum(0)
    fn = ((1 - pred) * truth * m).sum(0)
    tn = ((1 - pred) * (1 - truth) * m).sum(0)
    nan = torch.full_like(tp, float("nan"))
    recall = torch.where(tp + fn > 0, tp / (tp + fn).clamp(min=1), nan)
    specificity = torch.where(tn + fp > 0, tn / (tn + fp).clamp(min=1), nan)
    total = m.sum(0).clamp(min=1)
    return {
        "done_accuracy": ((tp + tn) / total).tolist(),
        "done_accuracy_constant": ((tn + fp) / total).tolist(),
        "done_precision": torch.where(tp + fp > 0, tp / (tp + fp).clamp(min=1), nan).tolist(),
        "done_recall": recall.tolist(),
        "done_balanced_accuracy": ((recall + specificity) / 2).tolist(),
        "done_positives": (tp + fn).tolist(),
    }


@dataclass
class Prediction:
    """M's open-loop prediction of H steps from B starts (a mean over rollouts where
    sampled)."""

    z: Tensor  # [B, H, Z]
    obs: Tensor  # [B, H, *obs] decoded
    rewards: Tensor  # [B, H]
    done_prob: Tensor  # [B, H]
    uncertainty: Tensor  # [B, H]
    samples: int  # rollouts averaged; 0: the one tau = 0 path


@torch.no_grad()
def predict(world: WorldModel, s: Starts, samples: int = 16, seed: int = 0) -> Prediction:
    """The mean open-loop prediction under the logged actions: M's tau = 0 path where that is
    its mean (``MemoryModel.point_is_mean``) or ``samples`` is 0; otherwise the mean of
    ``samples`` rollouts sampled at tau = 1 (the RSSM, whose tau = 0 step takes each
    categorical's mode: the path of most likely steps, which drifts from the mean)."""
    h = s.actions.shape[1]
    n = 0 if world.memory.point_is_mean else samples
    rep = (lambda x: x.repeat_interleave(n, 0)) if n else (lambda x: x)
    actions = rep(s.actions)
    out = world.imagine(
        rep(s.z0),
        tuple(rep(x) for x in s.state),
        lambda f, t: actions[:, t],
        h,
        temperature=1.0 if n else 0.0,
        generator=torch.Generator().manual_seed(seed),
        done_mode="threshold",
    )
    z = out.features[:, 1:, : world.vision.latent_dim]

    def mean(x: Tensor) -> Tensor:  # each start's n rollouts are consecutive rows
        return x.reshape(-1, n, *x.shape[1:]).mean(1) if n else x

    return Prediction(
        mean(z),
        mean(_decode(world, z)),
        mean(out.rewards),
        mean(out.done_prob),
        mean(out.uncertainty),
        samples=n,
    )


@torch.no_grad()
def open_loop(world: WorldModel, s: Starts, samples: int = 16, seed: int = 0) -> dict[str, Any]:
    """Every per-k error of M's mean prediction (``predict``) and of the naive baselines."""
    h = s.actions.shape[1]
    out = predict(world, s, samples, seed)
    z_pred = out.z
    k = torch.arange(1, h + 1, device=z_pred.device, dtype=z_pred.dtype).view(1, h, 1)
    vel = s.z0 - s.z_prev
    mask = s.mask
    latent = {
        "model": _per_k((z_pred - s.z_true).pow(2), mask),
        "repeat_last": _per_k((s.z0[:, None] - s.z_true).pow(2), mask),
        "constant_velocity": _per_k((s.z0[:, None] + k * vel[:, None] - s.z_true).pow(2), mask),
    }
    result: dict[str, Any] = {
        "horizon": h,
        "starts": int(s.z0.shape[0]),
        "samples": out.samples,
        "latent_mse": latent,
    }
    x_true = _obs_space(world, s.obs_true)
    x0 = _obs_space(world, s.obs0)
    x_prev = _obs_space(world, s.obs_prev)
    x_pred = out.obs
    kk = k.view(1, h, *([1] * (x_true.dim() - 2)))
    obs_err = {
        "model": (x_pred - x_true).pow(2),
        "repeat_last": (x0[:, None] - x_true).pow(2),
        "constant_velocity": (x0[:, None] + kk * (x0 - x_prev)[:, None] - x_true).pow(2),
    }
    result["obs_mse"] = {name: _per_k(e, mask) for name, e in obs_err.items()}
    if world.spec.obs_kind == "vector":
        fm = mask.float()[:, :, None]
        result["obs_mse_per_feature"] = {
            name: ((e * fm).sum(0) / fm.sum(0).clamp(min=1)).T.tolist()
            for name, e in obs_err.items()
        }  # [feature][k]
    for space in ("latent_mse", "obs_mse"):
        m = np.asarray(result[space]["model"])
        result[f"{space}_ratio"] = {
            base: ratio(m, result[space][base]).tolist()
            for base in ("repeat_last", "constant_velocity")
        }
    rewards = s.rewards.float()
    dones = s.dones.float()
    result["reward_mae"] = _per_k((out.rewards - rewards).abs(), mask)
    p = out.done_prob.clamp(1e-6, 1 - 1e-6)
    result["done_bce"] = _per_k(F.binary_cross_entropy(p, dones, reduction="none"), mask)
    result |= _done_scores((p > 0.5).float(), dones, mask)
    result["uncertainty"] = _per_k(out.uncertainty, mask)  # ensemble disagreement (0: one)
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
