"""DreamerV3-class training: the world model learns continuously from a replay of all real
experience, and an actor-critic learns only from trajectories the world model imagines.

One loop, top to bottom: act in the real env (random until ``prefill`` steps), add each step to
the replay, and -- ``train_ratio`` replayed steps per real step -- update the world model on a
replayed batch, imagine ``horizon`` steps from every posterior state of that batch, and update
the actor and the critic on the imagined λ-returns. At every episode end: the episode goes to
the store (atomically), the score / curve / best rule runs, and ``dreamer/last`` is saved with
everything a resume needs, so a kill loses at most the episode in progress.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodels.data.replay import Replay, SequenceReplay, StreamingReplay, step_bytes
from worldmodels.data.rollout import run_episode
from worldmodels.data.store import Episode, EpisodeStore
from worldmodels.envs import EnvSpec, action_to_env, cap_frames, make_env, random_action
from worldmodels.errors import TrainingDivergedError
from worldmodels.models.disagreement import DisagreementEnsemble
from worldmodels.models.rssm import (
    DreamerWorldModel,
    RssmState,
    TwoHot,
    mixed_softmax,
    mlp,
    zero_output,
)
from worldmodels.models.rssm_views import ActionScale, RssmMemory, RssmVision
from worldmodels.progress import progress_bar
from worldmodels.rl.returns import mc_or_lambda, td_lambda
from worldmodels.runs import Context, RunDir, model_payload, np_rng_state, restore_np_rng
from worldmodels.training.agent_io import restore_rng as restore_torch_rng
from worldmodels.training.agent_io import rng_state as torch_rng_state
from worldmodels.training.scoring import (
    AgentProgress,
    curve_point,
    judged_score,
    progress_from_dict,
    reached,
)
from worldmodels.world_model import WorldModel

NS = "dreamer"
LOG = logging.getLogger(__name__)
HELD_OUT_SEED = 900_000
"""Offset of the held-out episodes' seeds (training episodes use seed x 1,000,003 + index)."""


def replay_steps(dc: Any, spec: EnvSpec) -> int:
    """The replay's capacity: ``replay_capacity``, capped at what ``total_steps`` can fill
    (each episode stores its first observation too: one step more per episode)."""
    longest = spec.max_episode_steps or 1000
    return min(dc.replay_capacity, 2 * dc.total_steps + 2 * longest)


def obs_dtype(spec: EnvSpec) -> np.dtype:
    return np.dtype(np.uint8 if spec.obs_kind == "pixels" else np.float32)


@contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Parameters that pass gradients on to their inputs but get none themselves (their
    ``requires_grad`` restored on exit): no time spent on gradients no step will use."""
    params = [p for m in modules if m is not None for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


class Actor(nn.Module):
    """pi(a | s): categorical with a 1% uniform mix (discrete), or a Gaussian with a tanh mean
    and a std in [min_std, max_std] (continuous, actions clipped to [-1, 1])."""

    def __init__(
        self, feat_dim: int, action_dim: int, discrete: bool, hidden: int, layers: int,
        unimix: float = 0.01, min_std: float = 0.1, max_std: float = 1.0,
    ):  # fmt: skip
        super().__init__()
        self.discrete, self.action_dim, self.unimix = discrete, action_dim, unimix
        self.min_std, self.max_std = min_std, max_std
        self.net = mlp(feat_dim, hidden, layers, action_dim if discrete else 2 * action_dim)

    def dist(self, feat: Tensor) -> torch.distributions.Distribution:
        out = self.net(feat)
        if self.discrete:
            probs = mixed_softmax(out, self.unimix)
            return torch.distributions.Categorical(probs=probs, validate_args=False)
        mean, std = out.chunk(2, -1)
        std = (self.max_std - self.min_std) * torch.sigmoid(std + 2.0) + self.min_std
        normal = torch.distributions.Normal(torch.tanh(mean), std, validate_args=False)
        return torch.distributions.Independent(normal, 1, validate_args=False)

    def features(self, action: Tensor) -> Tensor:
        """A sampled action as the world model's input (one-hot, or clipped to [-1, 1])."""
        if self.discrete:
            return F.one_hot(action.long(), self.action_dim).float()
        return action.clamp(-1, 1)

    def entropy_range(self) -> tuple[float, float]:
        """The smallest and largest entropy of pi (discrete: 0 and ln |A|; continuous: the
        Gaussian's at min_std and at max_std in every action dimension)."""
        if self.discrete:
            return 0.0, math.log(self.action_dim)
        base = 0.5 * math.log(2 * math.pi * math.e)
        return tuple(  # type: ignore[return-value]
            self.action_dim * (base + math.log(std)) for std in (self.min_std, self.max_std)
        )

    def act(self, feat: Tensor, mode: bool) -> Tensor:
        d = self.dist(feat)
        if mode:
            return d.probs.argmax(-1) if self.discrete else d.mean  # type: ignore[attr-defined]
        return d.sample()

    def rsample(self, feat: Tensor) -> tuple[Tensor, Tensor]:
        """A sampled action and its world-model input, differentiable in the actor's output
        (dynamics backpropagation): a straight-through one-hot (its gradient is the
        probabilities'), or the Gaussian reparameterised."""
        d = self.dist(feat)
        if not self.discrete:
            action = d.rsample()
            return action, action.clamp(-1, 1)
        action = d.sample()
        probs = d.probs  # type: ignore[attr-defined]
        return action, self.features(action) + (probs - probs.detach())  # exactly the one-hot


class ReturnScale:
    """EMA of the 5th and 95th percentiles of the λ-returns; advantages are divided by their
    range where it exceeds 1 (small returns are not scaled up)."""

    def __init__(self, decay: float = 0.99):
        self.decay, self.lo, self.hi = decay, 0.0, 0.0
        self.started = False

    def update(self, returns: Tensor) -> float:
        probs = torch.tensor([0.05, 0.95], device=returns.device)
        q = torch.quantile(returns.detach().float().flatten(), probs)
        lo, hi = float(q[0]), float(q[1])
        if not self.started:
            self.lo, self.hi, self.started = lo, hi, True
        else:
            self.lo = self.decay * self.lo + (1 - self.decay) * lo
            self.hi = self.decay * self.hi + (1 - self.decay) * hi
        return max(1.0, self.hi - self.lo)

    def state(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "started": self.started}

    def load(self, state: dict[str, Any]) -> None:
        self.lo, self.hi, self.started = state["lo"], state["hi"], state["started"]


@dataclass
class DreamerProgress(AgentProgress):
    """The loop's counters, saved in ``dreamer/last``; ``iteration`` counts episodes."""

    episodes: int = 0
    agent_steps: int = 0
    """Steps the agent took (one per action; the train ratio counts these)."""
    updates: int = 0
    credit: float = 0.0
    """Updates owed by the train ratio, not yet made."""
    holding: bool = False
    """The agent is held fixed (``dreamer.stop_confirm``)."""
    held: int = 0
    """Scored episodes in a row the held agent played at the target."""


class Dreamer:
    """The world model, actor, critic, slow critic, their optimisers and the return scale."""

    def __init__(self, dc: Any, spec: EnvSpec, device: torch.device):
        self.dc, self.spec, self.device = dc, spec, device
        self.step_loss = np.zeros((0, 0), np.float32)  # the last update's loss per step [B, T]
        discrete = spec.action_kind == "discrete"
        self.action_dim = spec.action_dim
        self.wm = DreamerWorldModel(
            spec.obs_shape, spec.obs_kind == "pixels", spec.action_dim, dc.deter, dc.groups,
            dc.classes, dc.hidden, dc.layers, dc.cnn_depth, dc.bins, dc.unimix, dc.free_nats,
            {"dec": 1.0, "rew": dc.rew_scale, "cont": 1.0, "dyn": dc.dyn_scale,
             "rep": dc.rep_scale},
            dc.symlog_obs,
        ).to(device)  # fmt: skip
        feat = self.wm.feat_dim
        self.actor = Actor(feat, spec.action_dim, discrete, dc.hidden, dc.layers, dc.unimix).to(
            device
        )
        self.critic = mlp(feat, dc.hidden, dc.layers, dc.bins).to(device)
        zero_output(self.critic)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.twohot = TwoHot(dc.bins).to(device)
        # foreach: one kernel per step for all tensors (the default only on GPUs); the same
        # numbers as the per-tensor loop, ~0.9 ms less per world-model step on one CPU thread
        adam = lambda params, lr, eps: torch.optim.Adam(params, lr, eps=eps, foreach=True)  # noqa: E731
        self.opts = {
            "model": adam(self.wm.parameters(), dc.model_lr, 1e-8),
            "actor": adam(self.actor.parameters(), dc.actor_lr, 1e-5),
            "critic": adam(self.critic.parameters(), dc.critic_lr, 1e-5),
        }
        self.expl: DisagreementEnsemble | None = None
        if dc.expl_scale > 0:  # Plan2Explore's ensemble: next stochastic state from [h, z, a]
            stoch = dc.groups * dc.classes
            self.expl = DisagreementEnsemble(feat + spec.action_dim, stoch, dc.hidden,
                                             dc.expl_heads).to(device)  # fmt: skip
            self.opts["expl"] = adam(self.expl.parameters(), dc.model_lr, 1e-8)
        self.scale = ReturnScale(dc.return_decay)
        self.log_eta: Tensor | None = None  # the entropy bonus's log, learned (entropy_floor)
        if dc.entropy_floor > 0:
            lo, hi = self.actor.entropy_range()
            self.entropy_target = lo + dc.entropy_floor * (hi - lo)
            self.log_eta = torch.tensor(math.log(dc.entropy), device=device, requires_grad=True)
            self.opts["entropy"] = adam([self.log_eta], dc.entropy_lr, 1e-8)
        bf16 = dc.bf16 and device.type == "cuda"
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext
        )

    # -- acting -------------------------------------------------------------------------------
    def initial(self, n: int) -> tuple[RssmState, Tensor]:
        return self.wm.rssm.initial(n, self.device), torch.zeros(
            n, self.action_dim, device=self.device
        )

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, state: tuple[RssmState, Tensor], first: np.ndarray, mode: bool
    ) -> tuple[np.ndarray, tuple[RssmState, Tensor]]:
        """Filter one observation per env and pick actions -> (env actions, new state)."""
        rssm_state, prev = state
        obs = np.require(obs, requirements=["W"])  # env frames may be read-only views
        embed = self.wm.codec.encode(torch.as_tensor(obs, device=self.device))
        is_first = torch.as_tensor(first, device=self.device)
        rssm_state, _ = self.wm.rssm.obs_step(rssm_state, prev, embed, is_first, mode)
        action = self.actor.act(rssm_state.feat(), mode)
        return self.to_env(action), (rssm_state, self.actor.features(action))

    @torch.no_grad()
    def last_value(self, obs: np.ndarray, state: tuple[RssmState, Tensor]) -> float:
        """The critic's value of an episode's last observation, filtered into ``state`` (the
        state after the action that led to it): a cut episode's bootstrap."""
        rssm_state, prev = state
        obs = np.require(obs[None], requirements=["W"])
        embed = self.wm.codec.encode(torch.as_tensor(obs, device=self.device))
        first = torch.zeros(1, dtype=torch.bool, device=self.device)
        rssm_state, _ = self.wm.rssm.obs_step(rssm_state, prev, embed, first, True)
        return float(self.twohot.mean(self.critic(rssm_state.feat())).reshape(-1)[0])

    def to_env(self, action: Tensor) -> np.ndarray:
        a = action.cpu().numpy()
        if self.spec.action_kind == "discrete":
            return a.astype(np.int64)
        low, high = np.asarray(self.spec.action_low), np.asarray(self.spec.action_high)
        return (low + (np.clip(a, -1, 1) + 1) / 2 * (high - low)).astype(np.float32)

    def action_features(self, env_actions: np.ndarray) -> np.ndarray:
        """Stored env actions -> the model's action inputs (one-hot, or scaled to [-1, 1])."""
        if self.spec.action_kind == "discrete":
            return np.eye(self.action_dim, dtype=np.float32)[np.asarray(env_actions, np.int64)]
        low, high = np.asarray(self.spec.action_low), np.asarray(self.spec.action_high)
        return (2 * (np.asarray(env_actions) - low) / (high - low) - 1).astype(np.float32)

    # -- learning -----------------------------------------------------------------------------
    def update(
        self, batch: dict[str, np.ndarray], step: int, env_steps: int = 0
    ) -> dict[str, float]:
        """One gradient step of the world model, then of the actor and critic in imagination
        (``step``: the update's index, named by a NaN stop; ``env_steps``: real steps so far,
        which lower the entropy floor when ``entropy_floor_steps`` is set)."""
        data = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items() if k != "slot"}
        with self.autocast():
            wm_loss = self.wm.loss(data)
        self.step_loss = wm_loss.steps.float().cpu().numpy()
        _check_finite({f"model/{k}": v for k, v in wm_loss.parts.items()}, step)
        shape = self.dc.repval_scale > 0 and self.dc.repval_grad
        if not shape:
            self._step("model", wm_loss.total, self.wm, self.dc.model_clip)
        expl_loss = self._expl_step(wm_loss.states.detach(), data)
        last = slice(-self.dc.imag_last if self.dc.imag_last > 0 else None, None)
        live_states = RssmState(wm_loss.states.h[:, last], wm_loss.states.z[:, last])
        data = {k: v[:, last] for k, v in data.items()}
        starts = live_states.detach()
        flat = RssmState(
            starts.h.reshape(-1, starts.h.shape[-1]), starts.z.reshape(-1, starts.z.shape[-1])
        )
        cont0 = 1.0 - data["is_terminal"].float().reshape(-1)
        with self.autocast():
            ac = self._actor_critic_losses(flat, cont0)
            boot = ac.pop("start_return").reshape(starts.h.shape[:2])
            if self.dc.repval_scale > 0:
                ac["replay_value_loss"] = self._replay_value_loss(starts.feat(), data, boot)
                ac["critic_loss"] = (
                    ac["critic_loss"] + self.dc.repval_scale * (ac["replay_value_loss"])
                )
            if shape:  # the same loss through the live posterior states shapes the model
                live = self._replay_value_loss(live_states.feat(), data, boot)
        _check_finite({k: v for k, v in ac.items() if k in ("actor_loss", "critic_loss")}, step)
        if shape:  # its stray critic gradients are cleared by the critic's own step
            self._step("model", wm_loss.total + self.dc.repval_scale * live, self.wm,
                       self.dc.model_clip)  # fmt: skip
        self._step("actor", ac["actor_loss"], self.actor, self.dc.ac_clip)
        self._entropy_step(ac["actor_entropy"], env_steps)
        self._step("critic", ac["critic_loss"], self.critic, self.dc.ac_clip)
        with torch.no_grad():
            for slow, fast in zip(
                self.slow_critic.parameters(), self.critic.parameters(), strict=True
            ):
                slow.lerp_(fast, self.dc.slow_critic_tau)
        out = {f"model_{k}": float(v.detach()) for k, v in wm_loss.parts.items()}
        out["model_loss"] = float(wm_loss.total.detach())
        out.update({k: float(v.detach()) for k, v in ac.items()})
        if expl_loss is not None:
            out["expl_loss"] = float(expl_loss)
        return out

    def _expl_step(self, states: RssmState, data: dict[str, Tensor]) -> Tensor | None:
        """One step of the disagreement ensemble on the replayed posteriors: [h, z]_t and a_t
        -> z_{t+1}, inside one episode only."""
        if self.expl is None:
            return None
        x = torch.cat([states.feat()[:, :-1], data["action"][:, 1:].float()], -1)
        keep = (~data["is_first"][:, 1:].bool()).float()
        loss = self.expl.loss(
            x.reshape(-1, x.shape[-1]), states.z[:, 1:].reshape(-1, states.z.shape[-1]),
            keep.reshape(-1),
        )  # fmt: skip
        self._step("expl", loss, self.expl, self.dc.model_clip)
        return loss.detach()

    def _intrinsic(self, feat: Tensor, action_feat: Tensor) -> Tensor:
        """``expl_scale`` x the ensemble's disagreement on transitions [..., F] + [..., A]."""
        assert self.expl is not None
        return self.dc.expl_scale * self.expl.disagreement(torch.cat([feat, action_feat], -1))

    def entropy_coef(self) -> float:
        """The actor's entropy bonus: ``entropy``, or its learned value (``entropy_floor``)."""
        return self.dc.entropy if self.log_eta is None else float(self.log_eta.detach().exp())

    def floor_target(self, env_steps: int) -> float:
        """The entropy the floor holds after ``env_steps`` real steps: ``entropy_target``,
        lowered linearly to the range's bottom over ``entropy_floor_steps`` (when set)."""
        if self.dc.entropy_floor_steps <= 0:
            return self.entropy_target
        lo, _ = self.actor.entropy_range()
        left = max(0.0, 1.0 - env_steps / self.dc.entropy_floor_steps)
        return lo + left * (self.entropy_target - lo)

    def _entropy_step(self, entropy: Tensor, env_steps: int = 0) -> None:
        """SAC's temperature step: d loss / d log_eta = entropy - target, so the bonus grows
        while the entropy is under the floor; projected back to at least ``entropy``."""
        if self.log_eta is None:
            return
        opt = self.opts["entropy"]
        opt.zero_grad(set_to_none=True)
        target = self.floor_target(env_steps)
        (self.log_eta * (entropy.detach().float() - target)).backward()
        opt.step()
        with torch.no_grad():
            self.log_eta.clamp_(min=math.log(self.dc.entropy))

    def _step(self, name: str, loss: Tensor, module: nn.Module, clip: float) -> None:
        opt = self.opts[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), clip, foreach=True)
        opt.step()

    def imagine(self, start: RssmState, grad: bool = False) -> tuple[Tensor, Tensor]:
        """``horizon`` prior steps of the actor from every start, batched -> (features
        [N, H+1, F], actions [N, H, ...] as sampled). With ``grad`` the states carry the
        actor's gradient through the actions (``Actor.rsample``; the caller freezes the
        world model)."""
        feat, state = start.feat(), start
        feats, actions = [feat], []
        with torch.set_grad_enabled(grad):
            for _ in range(self.dc.horizon):
                if grad:
                    action, action_feat = self.actor.rsample(feat)
                else:
                    action = self.actor.act(feat, mode=False)
                    action_feat = self.actor.features(action)
                state, _ = self.wm.rssm.img_step(state, action_feat)
                feat = state.feat()
                feats.append(feat)
                actions.append(action)
        return torch.stack(feats, 1), torch.stack(actions, 1)

    def _live_return(self, feat: Tensor, actions: Tensor) -> Tensor:
        """The imagined λ-return [N, H] as a function of the imagined states [N, H+1, F]: its
        gradient reaches the actor through the (frozen) reward and continue heads, critic and
        dynamics (DreamerV1/V2's dynamics backpropagation)."""
        dc = self.dc
        nxt = feat[:, 1:].contiguous()
        reward = self.wm.reward_mean(nxt)
        if self.expl is not None:
            reward = reward + self._intrinsic(feat[:, :-1].contiguous(),
                                              self.actor.features(actions))  # fmt: skip
        cont = self.wm.cont_prob(nxt)
        value = self.twohot.mean(self.critic(feat))
        return td_lambda(reward, value[:, 1:], 1.0 - cont, torch.zeros_like(cont), dc.gamma,
                         dc.lam)  # fmt: skip

    def _actor_critic_losses(self, start: RssmState, cont0: Tensor) -> dict[str, Tensor]:
        dc = self.dc
        mix, live = dc.actor_grad_mix, None
        if mix > 0:  # the world model, critic (and ensemble) pass gradients, learn nothing
            with frozen(self.wm, self.critic, self.expl):
                feat, actions = self.imagine(start, grad=True)
                live = self._live_return(feat, actions)
            feat = feat.detach()
        else:
            feat, actions = self.imagine(start)
        logits = self.critic(feat)  # one forward: its detached mean is the bootstrap value
        now = feat[:, :-1].contiguous()  # a strided [N, H, F] Linear input runs as a slow bmm
        with torch.no_grad():
            nxt = feat[:, 1:].contiguous()
            reward = self.wm.reward_mean(nxt)
            bonus = None
            if self.expl is not None:
                bonus = self._intrinsic(now, self.actor.features(actions))
                reward = reward + bonus
            cont = self.wm.cont_prob(nxt)
            value = self.twohot.mean(logits.detach())
            slow = self.twohot.mean(self.slow_critic(now))
            ret = td_lambda(
                reward, value[:, 1:], 1.0 - cont, torch.zeros_like(cont), dc.gamma, dc.lam
            )
            weight = torch.cumprod(torch.cat([cont0[:, None], cont[:, :-1]], 1), 1)
            scale = self.scale.update(ret)
            adv = (ret - value[:, :-1]) / scale
        dist = self.actor.dist(now)
        logp = dist.log_prob(actions)
        entropy = dist.entropy()
        eta = self.entropy_coef()
        gain = logp * adv if live is None else (1 - mix) * logp * adv + mix * live / scale
        actor_loss = -(weight * (gain + eta * entropy)).mean()
        logits = logits[:, :-1]
        critic_loss = (
            weight * (self.twohot.loss(logits, ret) + dc.slow_reg * self.twohot.loss(logits, slow))
        ).mean()
        extra = {} if bonus is None else {"intrinsic_reward": bonus.mean()}
        return {
            **extra,
            "actor_loss": actor_loss,
            "critic_loss": critic_loss,
            "start_return": ret[:, 0],
            "actor_entropy": entropy.mean().detach(),
            "entropy_coef": ret.new_tensor(eta, dtype=torch.float32),
            "imagined_return": ret.mean(),
            "return_scale": ret.new_tensor(scale, dtype=torch.float32),
            "imagined_reward": reward.mean(),
        }

    def _replay_value_loss(self, feat: Tensor, data: dict[str, Tensor], boot: Tensor) -> Tensor:
        """The critic on the replayed real windows (DreamerV3's ``repval``): λ-returns of the
        real rewards and terminals, bootstrapped with each next state's imagined return, so
        the critic sees the real episode ends. feat [B, T, F]; boot [B, T]."""
        first, term = data["is_first"].bool(), data["is_terminal"].bool()
        feat = feat[:, :-1].contiguous()
        with torch.no_grad():
            cut = torch.cat([first[:, 2:], torch.zeros_like(first[:, :1])], 1)
            reward = data["reward"][:, 1:].float()
            if self.expl is not None:  # the imagined returns it bootstraps from hold it too
                reward = reward + self._intrinsic(feat, data["action"][:, 1:].float())
            ret = td_lambda(reward, boot[:, 1:], term[:, 1:], cut, self.dc.gamma, self.dc.lam)
            if "mc_return" in data:
                ret = mc_or_lambda(ret, data["mc_return"][:, :-1], self.dc.repval_return)
            slow = self.twohot.mean(self.slow_critic(feat))
        weight = (~first[:, 1:] & ~term[:, :-1]).float()  # transitions inside one episode
        logits = self.critic(feat)
        loss = self.twohot.loss(logits, ret) + self.dc.slow_reg * self.twohot.loss(logits, slow)
        return (weight * loss).mean()

    # -- checkpoints --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "world": model_payload("dreamer_world", self.wm.kwargs, self.wm),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "slow_critic": self.slow_critic.state_dict(),
            **({"expl": self.expl.state_dict()} if self.expl is not None else {}),
        }

    def training_state(self) -> dict[str, Any]:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "return_scale": self.scale.state(),
            **({"log_eta": self.log_eta.detach().clone()} if self.log_eta is not None else {}),
        }

    def load(self, payload: dict[str, Any]) -> None:
        self.wm.load_state_dict(payload["world"]["state_dict"])
        self.actor.load_state_dict(payload["actor"])
        self.critic.load_state_dict(payload["critic"])
        self.slow_critic.load_state_dict(payload["slow_critic"])
        if self.expl is not None:
            self.expl.load_state_dict(payload["expl"])
        if "optimizers" in payload:
            for k, o in self.opts.items():
                o.load_state_dict(payload["optimizers"][k])
            self.scale.load(payload["return_scale"])
            if self.log_eta is not None:
                with torch.no_grad():
                    self.log_eta.copy_(payload["log_eta"])


def fill_random(
    agent: Dreamer, env: Any, replay: SequenceReplay, rng: np.random.Generator, size: int
) -> np.ndarray:
    """Random-policy steps into an in-memory replay until it holds ``size`` steps, as the
    prefill acts (for measurements and tests) -> the last observation."""
    spec, none = agent.spec, np.zeros(agent.action_dim, np.float32)
    obs, _ = env.reset(seed=0)
    replay.add(obs, none, 0.0, True, False)
    while replay.size < size:
        action = random_action(spec, rng)
        obs, r, term, trunc, _ = env.step(action_to_env(action, spec))
        replay.add(obs, agent.action_features(action[None])[0], float(r), False, bool(term))
        if term or trunc:
            replay.commit(-1)  # returns to go, where the replay keeps them (no bootstrap)
            obs, _ = env.reset()
            replay.add(obs, none, 0.0, True, False)
    return obs


def _check_finite(losses: dict[str, Tensor], step: int) -> None:
    for name, value in losses.items():
        if not torch.isfinite(value).all():
            raise TrainingDivergedError(
                f"dreamer: loss {name} became {float(value.detach())} at update {step}; the last "
                f"good checkpoint (dreamer/last) was kept: lower the learning rates and --resume"
            )


class DreamerPolicy:
    """A trained Dreamer acting in n real envs (the ``Policy`` protocol); ``mode``: the
    actor's most likely action and the posterior's most likely state."""

    def __init__(self, agent: Dreamer, mode: bool = True):
        self.agent, self.mode = agent, mode

    def reset(self, n: int) -> Any:
        return (*self.agent.initial(n), True)

    def act(self, obs: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        rssm_state, prev, first = state
        flags = np.full(len(obs), first, dtype=bool)
        action, (rssm_state, prev) = self.agent.act(obs, (rssm_state, prev), flags, self.mode)
        return action, (rssm_state, prev, False)


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return {**torch_rng_state(), "numpy": np_rng_state(rng)}


def train_dreamer(ctx: Context) -> DreamerProgress:
    """Train until ``dreamer.total_steps`` real env steps or the target; resumable."""
    run, cfg, spec, device, writer = ctx.run, ctx.cfg, ctx.spec, ctx.device, ctx.writer
    progress = ctx.progress
    dc = cfg.section("dreamer")
    target = dc.target_return if dc.target_return is not None else spec.reward_threshold
    torch.manual_seed(cfg.seed)
    agent = Dreamer(dc, spec, device)
    rng = np.random.default_rng(cfg.seed)
    prog = DreamerProgress()
    store = EpisodeStore(run.episodes)
    store.clean_partial()
    last = None
    if run.has(f"{NS}/last"):
        last = run.load(f"{NS}/last")
        prog = progress_from_dict(DreamerProgress, last["progress"])
        if prog.complete and _finished(prog, dc, target):
            return prog
        prog.complete = False  # resumed with a larger budget or a higher target: go on
        agent.load(last)
        restore_torch_rng(last["rng"])
        restore_np_rng(rng, last["rng"]["numpy"])
    replay = make_replay(dc, spec, store, agent)
    prog = _rebuild(replay, store, agent, prog)
    if last is not None and "replay_priorities" in last:
        replay.priorities.load(last["replay_priorities"])
    recent: deque[float] = deque(prog.recent, maxlen=dc.stop_window)
    env = make_env(cfg.env)
    bar = progress_bar(total=dc.total_steps, initial=prog.env_steps, desc=NS, disable=not progress)
    t_start, steps_start = time.time(), prog.env_steps
    try:
        while prog.env_steps < dc.total_steps and not prog.complete:
            episode, stats = _episode(env, agent, replay, rng, cfg, prog)
            store.write(prog.episodes, episode)
            replay.commit(prog.episodes, episode.meta.get("boot_value"))
            counts = scored(dc, prog.episodes)
            prog.episodes += 1
            prog.iteration = prog.episodes
            if counts:
                recent.append(float(episode.meta["return"]))
                acted = episode.meta["policy"] != "random"
                _hold(dc, prog, float(episode.meta["return"]), target, acted)
            prog.recent = list(recent)
            prog.real_env_steps = prog.env_steps + prog.eval_steps
            score = judged_score(None, recent, dc.stop_window)
            stop = _stops(dc, score, target, prog)
            # stop_confirm: the held agent that stops is the best, even where an earlier
            # window scored as high
            improved = counts and (score > prog.best_score or (stop and dc.stop_confirm))
            prog.best_score = max(prog.best_score, score)
            prog.complete = prog.env_steps >= dc.total_steps or stop
            point = curve_point(None, recent)
            if counts and point is not None:
                run.log_curve(prog.real_env_steps, point)
            if improved or not run.has(f"{NS}/best"):
                run.save(f"{NS}/best", _payload(agent, spec, prog, rng, replay, training=False))
            run.save(f"{NS}/last", _payload(agent, spec, prog, rng, replay, training=True))
            _log(
                writer,
                prog,
                stats,
                recent,
                (prog.env_steps - steps_start) / max(time.time() - t_start, 1e-9),
            )
            bar.update(prog.env_steps - bar.n)
            bar.set_postfix(
                ret=f"{np.mean(recent) if recent else math.nan:.1f}", updates=prog.updates
            )
    finally:
        bar.close()
        env.close()
    return prog


def _finished(prog: DreamerProgress, dc: Any, target: float | None) -> bool:
    """Whether the run is done under ``dc`` (its budget or target may have changed since)."""
    score = judged_score(None, prog.recent[-dc.stop_window :], dc.stop_window)
    return prog.env_steps >= dc.total_steps or _stops(dc, score, target, prog)


def _stops(dc: Any, score: float, target: float | None, prog: DreamerProgress) -> bool:
    """The score stops the run: it reached the target and ``dreamer.stop_at_target`` is on
    (with ``stop_confirm``: and the last ``stop_window`` scored episodes were the held
    agent's)."""
    confirmed = not dc.stop_confirm or prog.held >= dc.stop_window
    return bool(dc.stop_at_target) and reached(score, target) and confirmed


def _hold(
    dc: Any, prog: DreamerProgress, ret: float, target: float | None, acted: bool
) -> None:  # fmt: skip
    """``dreamer.stop_confirm``: a scored episode the agent played (``acted``: not the random
    pre-fill's) at the target holds the agent fixed; the held agent's next scored episodes
    count while they stay at the target, and one under it releases the agent to learn on."""
    if not dc.stop_confirm:
        return
    at_target = acted and reached(ret, target)
    if prog.holding and at_target:
        prog.held += 1
    else:
        prog.holding, prog.held = at_target, 0


def replay_budget(dc: Any, spec: EnvSpec) -> tuple[int, int]:
    """(bytes the whole replay takes, bytes it may take in RAM: ``replay_memory_gb``, at
    most half of this machine's memory)."""
    need = replay_steps(dc, spec) * step_bytes(spec.obs_shape, obs_dtype(spec), spec.action_dim)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return need, int(min(dc.replay_memory_gb * 2**30, ram / 2))


def make_replay(dc: Any, spec: EnvSpec, store: EpisodeStore, agent: Dreamer) -> Replay:
    """The RAM ring when the replay fits its budget, else the stream from the episode store
    through an LRU cache of the budget."""
    need, budget = replay_budget(dc, spec)
    gamma = None if dc.repval_return == "lambda" else float(dc.gamma)  # returns to go
    if need <= budget:
        return SequenceReplay(
            replay_steps(dc, spec), spec.obs_shape, obs_dtype(spec), spec.action_dim, gamma
        )
    LOG.info("replay of %.2f GiB > budget %.2f GiB: streaming from %s", need / 2**30,
             budget / 2**30, store.root)  # fmt: skip
    return StreamingReplay(replay_steps(dc, spec), store, agent.action_features, budget, gamma)


def _rebuild(
    replay: Replay,
    store: EpisodeStore,
    agent: Dreamer,
    prog: DreamerProgress,
) -> DreamerProgress:
    """Fill the replay from the stored episodes; the store decides the counts (an episode
    written just before a kill, after the last checkpoint, is kept and counted once)."""
    env_steps = agent_steps = 0
    indices = store.valid_indices()
    for i, ep in store.iter_episodes(indices):
        replay.add_episode(ep, agent.action_features(ep.actions), i)
        env_steps += int(ep.meta.get("env_steps", ep.length))
        agent_steps += ep.length
    prog.episodes = (indices[-1] + 1) if indices else 0
    prog.env_steps, prog.agent_steps = env_steps, agent_steps
    return prog


MAX_HOLD = 10_000
"""The longest hold of an ez-greedy random action (decisions)."""


@dataclass
class HeldAction:
    """ez-greedy's random action in progress (``dreamer.explore_eps``): the action and how many
    more decisions it is held. Lives for one episode, so resume needs none of it."""

    action: np.ndarray | None = None
    left: int = 0
    decisions: int = 0
    """Decisions of the episode that took a held random action."""

    def next(self, dc: Any, spec: EnvSpec, rng: np.random.Generator) -> np.ndarray | None:
        """The random action for this decision, or None (the actor's). Draws from ``rng`` only
        with ``explore_eps`` > 0, so a run without it draws what it always did."""
        if dc.explore_eps <= 0:
            return None
        if self.left == 0 and rng.random() < dc.explore_eps:
            self.action = random_action(spec, rng)
            self.left = int(min(rng.zipf(dc.explore_exponent), MAX_HOLD))
        if self.left == 0:
            return None
        self.left -= 1
        self.decisions += 1
        return self.action


def scored(dc: Any, index: int) -> bool:
    """Whether training episode ``index`` counts towards the score (``dreamer.score_every``)."""
    return index % dc.score_every == dc.score_every - 1


def measures(dc: Any, index: int) -> bool:
    """Whether episode ``index`` is a separate scored one, acting as ``evaluate`` does."""
    return dc.score_every > 1 and scored(dc, index)


def by_mode(dc: Any, index: int) -> bool:
    """Whether training episode ``index`` acts by the mode."""
    policy = dc.eval_policy if measures(dc, index) else dc.act_policy
    return bool(policy == "mode")


def _episode(
    env: Any, agent: Dreamer, replay: Replay, rng: np.random.Generator, cfg: Any,
    prog: DreamerProgress,
) -> tuple[Episode, dict[str, float]]:  # fmt: skip
    """One real episode: act, store each step in the replay, update as the ratio owes."""
    dc, spec = cfg.section("dreamer"), agent.spec
    per_update = dc.train_ratio / (dc.batch_size * dc.seq_len)
    obs, _ = env.reset(seed=int(cfg.seed * 1_000_003 + prog.episodes))
    state = agent.initial(1)
    replay.add(obs, np.zeros(spec.action_dim, np.float32), 0.0, True, False)
    observations, actions, rewards, terminated = [obs], [], [], []
    env_steps, stats, first, limit, held = 0, {}, True, False, HeldAction()
    while True:
        if prog.agent_steps < dc.prefill:
            action = random_action(spec, rng)
        else:
            greedy, measuring = by_mode(dc, prog.episodes), measures(dc, prog.episodes)
            acts, state = agent.act(obs[None], state, np.array([first]), mode=greedy)
            action = acts[0]
            if not measuring and (explore := held.next(dc, spec, rng)) is not None:
                action = explore  # the model is fed the action taken
                taken = agent.action_features(np.asarray(action)[None])
                state = (state[0], torch.as_tensor(taken, device=agent.device))
        first = False
        cap_frames(env, dc.total_steps - prog.env_steps)
        obs, r, term, trunc, info = env.step(action_to_env(action, spec))
        feats = agent.action_features(np.asarray(action)[None])[0]
        limit = bool(info.get("time_limit"))  # env.time_feature: the step limit ends it
        replay.add(obs, feats, float(r), False, bool(term), limit)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(r))
        terminated.append(bool(term))
        env_steps += int(info.get("env_steps", 1))
        prog.agent_steps += 1
        prog.env_steps += int(info.get("env_steps", 1))
        if prog.agent_steps >= dc.prefill and replay.size >= dc.seq_len and not prog.holding:
            prog.credit += per_update  # a float sum: the same on resume (it is saved)
            while prog.credit >= 1.0:
                batch = replay.sample(
                    rng, dc.batch_size, dc.seq_len, dc.end_fraction, dc.end_balance,
                    dc.prio_fraction, dc.prio_exponent,
                )  # fmt: skip
                stats = agent.update(batch, prog.updates, prog.env_steps)
                if dc.prio_fraction > 0:
                    replay.priorities.update(batch["slot"], agent.step_loss)
                prog.updates += 1
                prog.credit -= 1.0
        if term or trunc or prog.env_steps >= dc.total_steps:
            break  # the budget cuts the last episode: stored as truncated
    learned = prog.agent_steps > dc.prefill  # the agent filtered (and acted in) this episode
    boot = {}  # a cut episode's bootstrap for its returns to go (dreamer.repval_return)
    if dc.repval_return != "lambda" and learned and not terminated[-1]:
        boot["boot_value"] = agent.last_value(obs, state)
    episode = Episode(
        observations=np.stack(observations),
        actions=np.asarray(
            actions, dtype=np.int64 if spec.action_kind == "discrete" else np.float32
        ),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminated=np.asarray(terminated, dtype=bool),
        meta={
            "env": spec.env_id,
            "seed": int(cfg.seed * 1_000_003 + prog.episodes),
            "return": float(np.sum(rewards)),
            "truncated": bool(not terminated[-1]),
            "time_limit": limit,
            "env_steps": env_steps,
            "explored": held.decisions,
            "policy": "random" if prog.agent_steps <= dc.prefill else NS,
            "acted": "mode" if by_mode(dc, prog.episodes) else "sample",
            "scored": scored(dc, prog.episodes),
            **boot,
        },
    )
    return episode, stats


def _payload(
    agent: Dreamer,
    spec: EnvSpec,
    prog: DreamerProgress,
    rng: np.random.Generator,
    replay: Replay,
    training: bool,
) -> dict[str, Any]:
    out = {"spec": spec.shape_signature(), "progress": dataclasses.asdict(prog), **agent.state()}
    if training:
        out.update(agent.training_state())
        out["rng"] = rng_state(rng)
        if agent.dc.prio_fraction > 0:
            out["replay_priorities"] = replay.priorities.state()
    return out


def _log(
    writer: Any, prog: DreamerProgress, stats: dict[str, float], recent: deque[float], fps: float
) -> None:
    step = prog.real_env_steps
    if recent:  # score_every k: none before the first scored episode
        writer.add_scalar("rollout/ep_rew_mean", float(np.mean(recent)), step)
    writer.add_scalar("time/fps", fps, step)
    writer.add_scalar("train/updates", prog.updates, step)
    for k, v in stats.items():
        name = {"model_loss": "model_loss", "model_kl": "kl"}.get(k, k)
        writer.add_scalar(f"train/{name}", v, step)


def dreamer_world(agent: Dreamer) -> WorldModel:
    """The agent's RSSM as the toolkit's V + M (``models/rssm_views.py``)."""
    spec = agent.spec
    continuous = spec.action_kind != "discrete"
    scale = ActionScale(spec.action_low, spec.action_high) if continuous else ActionScale()
    pixels = spec.obs_kind == "pixels"
    return WorldModel(
        RssmVision(agent.wm, pixels, spec.action_dim, scale),
        RssmMemory(agent.wm, spec.action_dim, scale),
        spec,
        agent.device,
    )


def record_held_out(
    agent: Dreamer, cfg: Any, store: EpisodeStore, episodes: int
) -> list[int]:  # fmt: skip
    """``episodes`` fresh real episodes of the agent's deterministic policy, written to
    ``store`` (seeds no training episode used): the RSSM never trained on them."""
    env = make_env(cfg.env)
    try:
        for k in range(episodes):
            seed = cfg.seed * 1_000_003 + HELD_OUT_SEED + k
            store.write(k, run_episode(env, agent.spec, DreamerPolicy(agent), seed))
    finally:
        env.close()
    return list(range(episodes))


def load_dreamer(run: RunDir, cfg: Any, spec: EnvSpec, device: torch.device, which: str) -> Dreamer:
    """The agent of ``dreamer/<which>`` (best or last), for evaluation."""
    payload = run.load(f"{NS}/{which}")
    agent = Dreamer(cfg.section("dreamer"), spec, device)
    agent.load(payload)
    return agent
