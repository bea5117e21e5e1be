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
from worldmodels.dream import DreamEnv
from worldmodels.envs import EnvSpec
from worldmodels.rl.latent_env import LatentVecEnv
from worldmodels.rl.ppo import Collector, check_finite
from worldmodels.rl.returns import normalise
from worldmodels.runs import RunDir
from worldmodels.training.agent_io import (
    ac_kwargs,
    build_ac,
    periodic_eval,
    restore_rng,
    rng_state,
    save_agent,
    score_and_stop,
)
from worldmodels.training.vision import DEFAULT_BETA, vision_kind
from worldmodels.training.wm_ppo import imagined_envs, stack_starts
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

    def before(self, actions: np.ndarray) -> None:
        v = self.venv
        act = self.prev_act if self.prev_act is not None else np.zeros_like(actions)
        self._state_before = tuple(s.clone() for s in v.state)
        self.rows.append(
            {
                "obs": v.raw_obs.copy(),
                "act": np.asarray(actions).copy(),
                "state": self._state_before,
                "prev_obs": self.prev_obs,
                "prev_act": act,
                "prev_state": self.prev_state,
                "first": self.first.copy(),
            }
        )
        self.prev_obs = v.raw_obs.copy()

    def after(self, actions: np.ndarray, out: tuple[Any, ...]) -> None:
        _, rew, term, trunc, info = out
        done = term | trunc
        nxt = self.venv.raw_obs.copy()
        if done.any():
            nxt[done] = info["final_raw_obs"][done]
        self.rows[-1] |= {"next_obs": nxt, "reward": rew.copy(), "term": term.copy()}
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

    @property
    def z(self) -> torch.Tensor:
        return self.venv.z

    @property
    def state(self) -> Any:
        return self.venv.state

    def step(self, actions: np.ndarray):
        self.recorder.before(actions)
        out = self.venv.step(actions)
        self.recorder.after(actions, out)
        return out


def _flat(rows: list[dict[str, Any]], key: str, device: torch.device) -> torch.Tensor:
    """Per-step arrays [N, ...] of T steps -> one tensor [T * N, ...] (step-major)."""
    x = torch.as_tensor(np.stack([r[key] for r in rows]), device=device)
    return x.reshape(-1, *x.shape[2:])


def _states(rows: list[dict[str, Any]], key: str, device: torch.device) -> tuple[torch.Tensor, ...]:
    parts = len(rows[0][key])
    return tuple(
        torch.stack([r[key][j] for r in rows]).to(device).reshape(-1, *rows[0][key][j].shape[1:])
        for j in range(parts)
    )


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
        "real_env_steps": collect_steps,
        "recent": [],
        "complete": False,
    }
    if run.has("a2c/last"):
        last = run.load("a2c/last")
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
    ic = cfg.imagination
    n_dream = imagined_envs(cfg)
    steps_before = prog["env_steps"]
    bar = tqdm(
        total=acfg.total_steps, initial=steps_before, desc="a2c", unit="step", disable=not progress
    )
    dev = world.device

    try:
        while prog["env_steps"] < acfg.total_steps and not prog["complete"]:
            t0 = time.time()
            it = prog["iteration"] + 1
            where = f"update {it}"
            world.vision.eval()
            world.memory.eval()
            starts: list[Any] = []
            roll = collector.collect(acfg.n_steps, where, starts)
            rows, recording.recorder.rows = recording.recorder.rows, []
            imagined = None
            if n_dream:
                dream = DreamEnv(
                    world,
                    stack_starts(starts),
                    n_dream,
                    ic.horizon,
                    cfg.memory.temperature,
                    initial_only=False,
                    done_mode=cfg.dream.done_mode,
                )
                imagined = Collector(dream, ac, dev, seed=cfg.seed * 104_729 + it)
                imagined_roll = imagined.collect(ic.horizon, where)
            adv, ret = roll.advantages(acfg.gamma, acfg.gae_lambda)
            t_len, n = roll.rewards.shape
            flat = t_len * n
            if acfg.end_to_end:
                world.vision.train()
                world.memory.train()
            with torch.set_grad_enabled(acfg.end_to_end):
                obs = _flat(rows, "obs", dev)
                first = _flat(rows, "first", dev)
                z, _ = world.vision.encode(obs)
                # h_t: M's step on (z_{t-1}, a_{t-1}) from its detached earlier state
                z_prev, _ = world.vision.encode(_flat(rows, "prev_obs", dev))
                prev_act = world.action_features(_flat(rows, "prev_act", dev))
                _, state = world.memory.step(z_prev, prev_act, _states(rows, "prev_state", dev))
                h = world.memory.hidden(state)
                h = torch.where(first[:, None], torch.zeros_like(h), h)
                features = torch.cat([z, h], -1)
                if not acfg.end_to_end:
                    features = features.detach()
            raw = roll.raw.reshape(flat, *roll.raw.shape[2:])
            adv_all, ret_all = adv.reshape(flat), ret.reshape(flat)
            if imagined is not None:
                i_adv, i_ret = imagined_roll.advantages(acfg.gamma, acfg.gae_lambda)
                f_i = imagined_roll.features
                features = torch.cat([features, f_i.reshape(-1, f_i.shape[-1])])
                raw = torch.cat([raw, imagined_roll.raw.reshape(-1, *raw.shape[1:])])
                adv_all = torch.cat([adv_all, i_adv.reshape(-1)])
                ret_all = torch.cat([ret_all, i_ret.reshape(-1)])
            dist = ac.dist(features)
            logp = dist.log_prob(raw)
            losses = {
                "policy_loss": -(logp * normalise(adv_all)).mean(),
                "value_loss": (ac.value(features) - ret_all).pow(2).mean(),
                "entropy": dist.entropy(raw).mean(),
            }
            total = (
                losses["policy_loss"]
                + acfg.value_coef * losses["value_loss"]
                - acfg.entropy_coef * losses["entropy"]
            )
            if acfg.end_to_end:
                # M's prediction loss on each real transition (z_t, a_t) -> (z_{t+1}, r_t, done_t)
                act = world.action_features(_flat(rows, "act", dev))
                out, _ = world.memory.step(z, act, _states(rows, "state", dev))
                z_next, _ = world.vision.encode(_flat(rows, "next_obs", dev))
                losses["memory_loss"] = world.memory.step_loss(
                    out,
                    z_next.detach(),
                    _flat(rows, "reward", dev).float(),
                    _flat(rows, "term", dev).float(),
                )
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
            eval_score = periodic_eval(cfg, spec, world, ac, it, prog, writer, target)
            real_steps = prog["collect_steps"] + prog["env_steps"] + prog.get("eval_steps", 0)
            prog["real_env_steps"] = real_steps
            _, improved = score_and_stop(cfg, prog, list(recent), eval_score, target)
            if eval_score is not None or recent:  # the score the stop rule judges by
                curve_point = eval_score if eval_score is not None else float(np.mean(recent))
                run.log_curve(real_steps, curve_point)
            weights = {
                "vision_state": world.vision.state_dict(),
                "memory_state": world.memory.state_dict(),
            }
            if improved or not run.has("a2c/best"):
                save_agent(run, "a2c/best", cfg, spec, ac, dict(prog), weights)
            save_agent(
                run,
                "a2c/last",
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
            "a2c/last",
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
