"""The Dreamer agent: its networks, their losses and optimisers, and one ``update``.

The world model (``models/rssm.py``) learns from a replayed batch; from every posterior state
of that batch the actor imagines ``horizon`` prior steps, and the actor and the critic learn
from the imagined λ-returns (and, with ``repval_scale``, the critic from the replayed real
returns too). ``DreamerPolicy`` is the trained agent acting in real envs."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from worldmodels.envs import EnvSpec
from worldmodels.errors import TrainingDivergedError
from worldmodels.models.disagreement import DisagreementEnsemble
from worldmodels.models.rssm import DreamerWorldModel, RssmState, TwoHot, mlp, zero_output
from worldmodels.rl.returns import mc_or_lambda, td_lambda
from worldmodels.runs import cpu_bf16, model_payload
from worldmodels.training.dreamer.actor import Actor, ReturnScale, adam, frozen
from worldmodels.training.dreamer.config import DreamerConfig


class Dreamer:
    """The world model, actor, critic, slow critic, their optimisers and the return scale
    (with ``expl_scale``: Plan2Explore's ensemble)."""

    def __init__(self, dc: DreamerConfig, spec: EnvSpec, device: torch.device):
        self.dc, self.spec, self.device = dc, spec, device
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
        bf16 = dc.bf16 and device.type == "cuda"
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext
        )
        batched = bf16 or (dc.bf16 and device.type == "cpu" and cpu_bf16())
        self.batched_autocast = (
            (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if batched else nullcontext
        )
        """The batched passes over imagined states: bf16 also on a CPU with AMX."""

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
        action, action_feat = self.actor.sample(rssm_state.feat(), mode)
        return self.to_env(action), (rssm_state, action_feat)

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
    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        """One gradient step of the world model, then of the actor and critic in imagination
        (``step``: the update's index, named by a NaN stop)."""
        data = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        with self.autocast():
            wm_loss = self.wm.loss(data)
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
            ac = self.actor_critic_losses(flat, cont0)
            boot = ac.pop("start_return").reshape(starts.h.shape[:2])
            if self.dc.repval_scale > 0:
                ac["replay_value_loss"] = self.replay_value_loss(starts.feat(), data, boot)
                ac["critic_loss"] = (
                    ac["critic_loss"] + self.dc.repval_scale * (ac["replay_value_loss"])
                )
            if shape:  # the same loss through the live posterior states shapes the model
                live = self.replay_value_loss(live_states.feat(), data, boot)
        _check_finite({k: v for k, v in ac.items() if k in ("actor_loss", "critic_loss")}, step)
        steps = [("actor", ac["actor_loss"], self.actor, self.dc.ac_clip),
                 ("critic", ac["critic_loss"], self.critic, self.dc.ac_clip)]  # fmt: skip
        if shape:  # its stray critic gradients are cleared by the critic's own backward
            model_loss = wm_loss.total + self.dc.repval_scale * live
            steps.insert(0, ("model", model_loss, self.wm, self.dc.model_clip))
        self._steps(steps)
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
        disagreement = self.expl.disagreement(torch.cat([feat, action_feat], -1)).float()
        return self.dc.expl_scale * disagreement

    def _step(self, name: str, loss: Tensor, module: nn.Module, clip: float) -> None:
        self._steps([(name, loss, module, clip)])

    def _steps(self, steps: list[tuple[str, Tensor, nn.Module, float]]) -> None:
        """Each (optimiser, loss, module, clip)'s gradients in order, a later loss's backward
        clearing what an earlier one left on its module; then every optimiser's step. No step
        changes a weight that a later backward reads (the actor's dynamics gradient reads the
        world model's when the replay value loss shapes it)."""
        for name, loss, _, _ in steps:
            self.opts[name].zero_grad(set_to_none=True)
            loss.backward()
        for name, _, module, clip in steps:
            nn.utils.clip_grad_norm_(module.parameters(), clip, foreach=True)
            self.opts[name].step()

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
                    action, action_feat = self.actor.sample(feat)
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

    def actor_critic_losses(self, start: RssmState, cont0: Tensor) -> dict[str, Tensor]:
        """The actor's and the critic's losses on ``horizon`` imagined steps from every start
        (``cont0``: whether each start is no terminal), and what the log reports of them."""
        dc = self.dc
        mix, live = dc.actor_grad_mix, None
        if mix > 0:  # the world model, critic (and ensemble) pass gradients, learn nothing
            with frozen(self.wm, self.critic, self.expl):
                feat, actions = self.imagine(start, grad=True)
                live = self._live_return(feat, actions)
            feat = feat.detach()
        else:
            feat, actions = self.imagine(start)
        with self.batched_autocast():
            return self._imagined_losses(feat, actions, cont0, live)

    def _imagined_losses(
        self, feat: Tensor, actions: Tensor, cont0: Tensor, live: Tensor | None
    ) -> dict[str, Tensor]:
        """The losses of ``actor_critic_losses`` from the imagined features [N, H+1, F] and
        actions (``live``: the differentiable λ-return of ``actor_grad_mix``)."""
        dc, mix = self.dc, self.dc.actor_grad_mix
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
        gain = logp * adv if live is None else (1 - mix) * logp * adv + mix * live / scale
        actor_loss = -(weight * (gain + dc.entropy * entropy)).mean()
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
            "imagined_return": ret.mean(),
            "return_scale": ret.new_tensor(scale, dtype=torch.float32),
            "imagined_reward": reward.mean(),
        }

    def replay_value_loss(self, feat: Tensor, data: dict[str, Tensor], boot: Tensor) -> Tensor:
        """The critic on the replayed real windows (DreamerV3's ``repval``): λ-returns of the
        real rewards and terminals, bootstrapped with each next state's imagined return, so
        the critic sees the real episode ends. feat [B, T, F]; boot [B, T]."""
        with self.batched_autocast():
            return self._replay_value_loss(feat, data, boot)

    def _replay_value_loss(self, feat: Tensor, data: dict[str, Tensor], boot: Tensor) -> Tensor:
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
        """The networks: what an evaluation loads."""
        return {
            "world": model_payload("dreamer_world", self.wm.kwargs, self.wm),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "slow_critic": self.slow_critic.state_dict(),
            **({"expl": self.expl.state_dict()} if self.expl is not None else {}),
        }

    def training_state(self) -> dict[str, Any]:
        """The optimisers and the return scale: what a resume adds."""
        return {
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "return_scale": self.scale.state(),
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


def _check_finite(losses: dict[str, Tensor], step: int) -> None:
    for name, value in losses.items():
        if not torch.isfinite(value).all():
            raise TrainingDivergedError(
                f"dreamer: loss {name} became {float(value.detach())} at update {step}; the last "
                f"good checkpoint (dreamer/last) was kept: lower the learning rates and --resume"
            )


PolicyState = tuple[RssmState, Tensor, bool]
"""A ``DreamerPolicy``'s state: the posterior, the last action's features, whether the next
observation is an episode's first."""


class DreamerPolicy:
    """A trained Dreamer acting in n real envs (the ``Policy`` protocol); ``mode``: the
    actor's most likely action and the posterior's most likely state."""

    def __init__(self, agent: Dreamer, mode: bool = True):
        self.agent, self.mode = agent, mode

    def reset(self, n: int) -> PolicyState:
        return (*self.agent.initial(n), True)

    def act(self, obs: np.ndarray, state: PolicyState) -> tuple[np.ndarray, PolicyState]:
        rssm_state, prev, first = state
        flags = np.full(len(obs), first, dtype=bool)
        action, (rssm_state, prev) = self.agent.act(obs, (rssm_state, prev), flags, self.mode)
        return action, (rssm_state, prev, False)
