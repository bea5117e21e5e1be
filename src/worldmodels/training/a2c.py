"""``--method a2c`` (seed 000): advantage actor-critic on [z, h], V and M trained end to end.

Every update: ``ac.n_steps`` steps of ``ac.num_envs`` real envs (through V and M, under no
grad), GAE on them, then ONE gradient step on

    L = policy + value_coef * value - entropy_coef * entropy
        + vision_coef * beta-VAE(x_t) + memory_coef * (MSE(z_pred_t, z_t) + MSE(r_pred, r))

The features are recomputed with gradient: z_t = V(x_t), and h_t = M(z_{t-1}, a_{t-1}) from
the *detached* state M had before that step. So the actor-critic loss reaches V through z_t
and z_{t-1} and M through the current step, while the history stays detached (seed 000's
Issue 3: no detach of the current inputs; a buffer that does not grow). Rewards are the ones
of the action taken at t (seed 000's Issue 1). With ``ac.end_to_end=false`` V and M stay fixed
and only the actor-critic learns.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from worldmodels.config import Config
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import EnvSpec
from worldmodels.models.memory.mdn import mdn_mean
from worldmodels.rl.latent_env import LatentVecEnv
from worldmodels.rl.ppo import Collector, check_finite
from worldmodels.rl.returns import normalise
from worldmodels.runs import RunDir
from worldmodels.training.agent_io import ac_kwargs, build_ac, restore_rng, rng_state, save_agent
from worldmodels.training.vision import DEFAULT_BETA, vision_kind
from worldmodels.world_model import WorldModel


class _Recorder:
    """What the end-to-end update needs per step, captured before each real step."""

    def __init__(self, venv: LatentVecEnv):
        self.venv = venv
        self.prev_obs = venv.raw_obs.copy()
        self.prev_act: np.ndarray | None = None
        self.prev_state = tuple(s.clone() for s in venv.state)
        self.first = np.ones(venv.num_envs, dtype=bool)
        self.rows: list[dict[str, Any]] = []

    def before(self) -> None:
        v = self.venv
        act = self.prev_act if self.prev_act is not None else np.zeros(v.num_envs, np.int64)
        self.rows.append(
            {
                "obs": v.raw_obs.copy(),
                "prev_obs": self.prev_obs,
                "prev_act": act,
                "prev_state": self.prev_state,
                "first": self.first.copy(),
            }
        )
        self.prev_obs = v.raw_obs.copy()
        self._state_before = tuple(s.clone() for s in v.state)

    def after(self, actions: np.ndarray, done: np.ndarray) -> None:
        self.prev_act = np.asarray(actions).copy()
        self.prev_state = self._state_before
        self.first = done.copy()


class _RecordingEnv:
    """Wraps the latent env so the collector's steps are recorded for the update."""

    def __init__(self, venv: LatentVecEnv):
        self.venv = venv
        self.recorder: _Recorder

    def reset(self, **kw: Any):
        out = self.venv.reset(**kw)
        self.recorder = _Recorder(self.venv)
        return out

    def step(self, actions: np.ndarray):
        self.recorder.before()
        out = self.venv.step(actions)
        self.recorder.after(actions, out[2] | out[3])
        return out


def _stack(rows: list[dict[str, Any]], key: str, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.stack([r[key] for r in rows]), device=device)


def train_a2c(
    run: RunDir,
    cfg: Config,
    spec: EnvSpec,
    world: WorldModel,
    writer: Any,
    progress: bool = True,
) -> dict[str, Any]:
    acfg = cfg.ac
    target = acfg.target_return if acfg.target_return is not None else spec.reward_threshold
    store = EpisodeStore(run.episodes)
    collect_steps = int(store.summary()["env_steps"])
    torch.manual_seed(cfg.seed + 600)
    ac = build_ac(ac_kwargs(cfg, world.feature_dim), spec).to(world.device)
    params = list(ac.parameters())
    if acfg.end_to_end:
        params += list(world.vision.parameters()) + list(world.memory.parameters())
    opt = torch.optim.Adam(params, lr=acfg.lr)
    prog: dict[str, Any] = {
        "iteration": 0,
        "env_steps": 0,
        "collect_steps": collect_steps,
        "best_score": -math.inf,
        "recent": [],
        "complete": False,
    }
    if run.has("agent/last"):
        last = run.load("agent/last")
        prog = last["progress"]
        if prog.get("complete"):
            return prog
        ac.load_state_dict(last["model"]["state_dict"])
        world.vision.load_state_dict(last["vision_state"])
        world.memory.load_state_dict(last["memory_state"])
        opt.load_state_dict(last["optimizer"])
        restore_rng(last["rng"])
    kind = vision_kind(cfg, spec)
    beta = cfg.vision.beta if cfg.vision.beta is not None else DEFAULT_BETA[kind]
    recent: deque[float] = deque(prog["recent"], maxlen=acfg.stop_window)
    seed = cfg.seed * 7919 + prog["iteration"]
    venv = LatentVecEnv(cfg.env, world, acfg.num_envs, seed, store)
    recording = _RecordingEnv(venv)
    collector = Collector(recording, ac, world.device, seed)
    steps_before = prog["env_steps"]
    bar = tqdm(
        total=acfg.total_steps, initial=steps_before, desc="a2c", unit="step", disable=not progress
    )
    dev = world.device

    def state_views(r: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        return r["prev_state"]

    try:
        while prog["env_steps"] < acfg.total_steps and not prog["complete"]:
            t0 = time.time()
            it = prog["iteration"] + 1
            where = f"update {it}"
            world.vision.eval()
            world.memory.eval()
            roll = collector.collect(acfg.n_steps, where)
            rows, recording.recorder.rows = recording.recorder.rows, []
            adv, ret = roll.advantages(acfg.gamma, acfg.gae_lambda)
            t_len, n = roll.rewards.shape
            flat = t_len * n
            if acfg.end_to_end:
                world.vision.train()
                world.memory.train()
            with torch.set_grad_enabled(acfg.end_to_end):
                obs = _stack(rows, "obs", dev).reshape(flat, *spec.obs_shape)
                prev_obs = _stack(rows, "prev_obs", dev).reshape(flat, *spec.obs_shape)
                first = _stack(rows, "first", dev).reshape(flat)
                prev_act = _stack(rows, "prev_act", dev)
                prev_act = prev_act.reshape(flat, *prev_act.shape[2:])
                n_parts = len(rows[0]["prev_state"])
                prev_state = tuple(
                    torch.stack([state_views(r)[j] for r in rows]).reshape(flat, -1)
                    for j in range(n_parts)
                )
                z, _ = world.vision.encode(obs)
                z_prev, _ = world.vision.encode(prev_obs)
                out, state = world.memory.step(z_prev, world.action_features(prev_act), prev_state)
                h = world.memory.hidden(state)
                h = torch.where(first[:, None], torch.zeros_like(h), h)
                features = torch.cat([z, h], -1)
                if not acfg.end_to_end:
                    features = features.detach()
            dist = ac.dist(features)
            raw = roll.raw.reshape(flat, *roll.raw.shape[2:])
            logp = dist.log_prob(raw)
            a = normalise(adv.reshape(flat))
            losses = {
                "policy_loss": -(logp * a).mean(),
                "value_loss": (ac.value(features) - ret.reshape(flat)).pow(2).mean(),
                "entropy": dist.entropy(raw).mean(),
            }
            total = (
                losses["policy_loss"]
                + acfg.value_coef * losses["value_loss"]
                - acfg.entropy_coef * losses["entropy"]
            )
            if acfg.end_to_end:
                keep = (~first).float()
                denom = keep.sum().clamp(min=1.0)
                z_pred = mdn_mean(out.logit_pi[:, -1], out.mu[:, -1])
                prev_rew = torch.cat([torch.zeros_like(roll.rewards[:1]), roll.rewards[:-1]])
                reward_pred, _ = world.memory.reward_done(out)
                losses["memory_loss"] = (
                    ((z_pred - z.detach()).pow(2).mean(-1) * keep).sum()
                    + ((reward_pred - prev_rew.reshape(flat)).pow(2) * keep).sum()
                ) / denom
                losses["vision_loss"], _ = world.vision.loss(obs, beta, cfg.vision.kl_tolerance)
                total = (
                    total
                    + acfg.memory_coef * losses["memory_loss"]
                    + acfg.vision_coef * losses["vision_loss"]
                )
            for name, value in losses.items():
                check_finite(f"the A2C {name}", value, where)
            opt.zero_grad()
            total.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, acfg.max_grad_norm)
            opt.step()
            world.vision.eval()
            world.memory.eval()

            for r_, _ in venv.finished:
                recent.append(r_)
            venv.finished.clear()
            prog["iteration"] = it
            prog["env_steps"] = steps_before + venv.env_steps
            prog["recent"] = list(recent)
            real_steps = prog["collect_steps"] + prog["env_steps"]
            prog["real_env_steps"] = real_steps
            score = float(np.mean(recent)) if len(recent) == recent.maxlen else -math.inf
            weights = {
                "vision_state": world.vision.state_dict(),
                "memory_state": world.memory.state_dict(),
            }
            if score > prog["best_score"] or not run.has("agent/best"):
                prog["best_score"] = max(score, prog["best_score"])
                save_agent(run, "best", cfg, spec, ac, dict(prog), weights)
            prog["complete"] = bool(
                prog["env_steps"] >= acfg.total_steps or (target is not None and score >= target)
            )
            save_agent(
                run,
                "last",
                cfg,
                spec,
                ac,
                prog,
                {**weights, "optimizer": opt.state_dict(), "rng": rng_state()},
            )
            if recent:
                writer.add_scalar("rollout/ep_rew_mean", float(np.mean(recent)), real_steps)
                writer.add_scalar("train/mean_episode_reward", float(np.mean(recent)), real_steps)
            for k, v in losses.items():
                writer.add_scalar(f"train/{k}", float(v.detach()), real_steps)
            writer.add_scalar("gradients/norm", float(grad_norm), real_steps)
            writer.add_scalar("time/fps", flat / max(time.time() - t0, 1e-9), real_steps)
            bar.update(prog["env_steps"] - bar.n)
            bar.set_postfix(ret=f"{np.mean(recent):.1f}" if recent else "-")
    finally:
        bar.close()
        venv.close()
    if not prog["complete"]:
        prog["complete"] = True
        save_agent(
            run,
            "last",
            cfg,
            spec,
            ac,
            prog,
            {
                "vision_state": world.vision.state_dict(),
                "memory_state": world.memory.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": rng_state(),
            },
        )
    return prog
