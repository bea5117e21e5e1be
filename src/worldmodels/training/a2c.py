"""``--method a2c``: advantage actor-critic on [z, h], V and M trained end to end.

Every update: ``ac.n_steps`` steps of ``ac.num_envs`` real envs (through V and M, under no
grad), GAE on them, then ONE gradient step on

    L = policy + value_coef * value - entropy_coef * entropy
        + vision_coef * beta-VAE(x_t) + memory_coef * (MSE(z_pred_t, z_t) + MSE(r_pred, r))

The features are recomputed with gradient: z_t = V(x_t), and h_t = M(z_{t-1}, a_{t-1}) from
the *detached* state M had before that step. So the actor-critic loss reaches V through z_t
and z_{t-1} and M through the current step, while the history stays detached (the
current inputs are not detached, and the buffer does not grow). Rewards are the ones of the
action taken at t. With ``ac.end_to_end=false`` V and M stay fixed
and only the actor-critic learns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from worldmodels.config import Config
from worldmodels.envs import EnvSpec
from worldmodels.rl.actor_critic import ActorCritic
from worldmodels.rl.latent_env import LatentVecEnv
from worldmodels.rl.ppo import Collector, check_finite
from worldmodels.rl.returns import normalise
from worldmodels.training.actor_critic_config import ActorCriticConfig
from worldmodels.training.on_policy import Progress, imagined_rollout
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


class A2cUpdate:
    """The A2C update on the loop of ``training/on_policy.py``."""

    seed_offset = 600

    def __init__(self, cfg: Config, spec: EnvSpec, world: WorldModel):
        self.cfg, self.world = cfg, world
        self.acfg = cfg.section(ActorCriticConfig)
        kind = vision_kind(cfg, spec)
        self.beta = cfg.vision.beta if cfg.vision.beta is not None else DEFAULT_BETA[kind]

    def setup(self, ac: ActorCritic) -> torch.optim.Optimizer:
        self.ac = ac
        self.params = list(ac.parameters())
        if self.acfg.end_to_end:
            self.params += list(self.world.vision.parameters())
            self.params += list(self.world.memory.parameters())
        self.opt = torch.optim.Adam(self.params, lr=self.acfg.lr)
        return self.opt

    def wrap(self, venv: LatentVecEnv) -> Any:
        self.recording = _RecordingEnv(venv)
        return self.recording

    def state(self) -> dict[str, Any]:
        return {
            "vision_state": self.world.vision.state_dict(),
            "memory_state": self.world.memory.state_dict(),
        }

    def load(self, last: dict[str, Any]) -> None:
        self.world.vision.load_state_dict(last["vision_state"])
        self.world.memory.load_state_dict(last["memory_state"])

    def loop_state(self) -> dict[str, Any]:
        """The previous real step, which the next update's first row is built from."""
        r = self.recording.recorder
        return {
            "prev_obs": torch.as_tensor(r.prev_obs),
            "prev_act": None if r.prev_act is None else torch.as_tensor(r.prev_act),
            "prev_state": list(r.prev_state),
            "first": torch.as_tensor(r.first),
        }

    def load_loop_state(self, state: dict[str, Any]) -> None:
        r = self.recording.recorder
        r.prev_obs = state["prev_obs"].numpy().copy()
        r.prev_act = None if state["prev_act"] is None else state["prev_act"].numpy().copy()
        r.prev_state = tuple(s.to(self.world.device) for s in state["prev_state"])
        r.first = state["first"].numpy().copy()

    def after_iteration(self, prog: Progress, it: int, real_steps: int) -> None:
        pass

    def iterate(
        self, collector: Collector, prog: Progress, it: int, where: str
    ) -> dict[str, float]:
        cfg, acfg, world, ac = self.cfg, self.acfg, self.world, self.ac
        dev = world.device
        world.vision.eval()
        world.memory.eval()
        starts: list[Any] = []
        roll = collector.collect(acfg.n_steps, where, starts)
        rows, self.recording.recorder.rows = self.recording.recorder.rows, []
        imagined = imagined_rollout(cfg, world, ac, starts, it, where)
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
            prog.imagined_steps += len(imagined)
            i_adv, i_ret = imagined.advantages(acfg.gamma, acfg.gae_lambda)
            f_i = imagined.features
            features = torch.cat([features, f_i.reshape(-1, f_i.shape[-1])])
            raw = torch.cat([raw, imagined.raw.reshape(-1, *raw.shape[1:])])
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
            losses["vision_loss"], _ = world.vision.loss(obs, self.beta, cfg.vision.kl_tolerance)
            total = (
                total
                + acfg.memory_coef * losses["memory_loss"]
                + acfg.vision_coef * losses["vision_loss"]
            )
        for name, value in losses.items():
            check_finite(f"the A2C {name}", value, where)
        self.opt_step(total)
        world.vision.eval()
        world.memory.eval()
        stats = {k: float(v.detach()) for k, v in losses.items()}
        return stats | {"grad_norm": self.grad_norm}

    def opt_step(self, total: torch.Tensor) -> None:
        self.opt.zero_grad()
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.acfg.max_grad_norm)
        self.grad_norm = float(norm)
        self.opt.step()
