"""A deterministic residual MLP dynamics model (seed 003's fix) and its ensembles.

next z = z + scale * delta(z, a), delta from an MLP with LayerNorm + ReLU and residual hidden
blocks; a reward head and a done head on the same trunk (seed 004's heads). The model is
Markov: its recurrent state is an empty tensor and the controller's h is empty. With
``ensemble = K`` there are K independently initialised members; predictions are their mean
and ``disagreement`` (the members' std, averaged over z) is reported as uncertainty.

Training modes (``loss``), all on sequences [B, T+1, Z] with a mask:
- ``single``: one-step MSE from the true z_t at every t;
- ``multistep``: open-loop rollouts of ``rollout_steps`` from every start, gradients through
  all steps, per-step weights;
- ``teacher_forcing``: rollouts where each step's input is the true z_t with probability p
  (p decays per epoch from ``tf_start`` by ``tf_decay``, or a fixed ``tf_mix``);
- ``curriculum``: multistep with the rollout length growing 1 -> 2 -> ... -> rollout_steps
  every ``curriculum_epochs`` epochs.
Per-feature weights scale the squared error of each z dimension.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodels.models.memory.base import MemoryModel
from worldmodels.models.memory.mdn_rnn import MemoryBatch

MODES = ("single", "multistep", "teacher_forcing", "curriculum")


class ResidualOutput(NamedTuple):
    z_next: Tensor  # [B, 1, Z] the ensemble mean
    reward: Tensor  # [B, 1]
    done_logit: Tensor  # [B, 1]
    disagreement: Tensor  # [B, 1] members' std, mean over z (0 for one member)


class _Member(nn.Module):
    def __init__(self, latent_dim: int, action_dim: int, hidden: int, blocks: int):
        super().__init__()
        self.inp = nn.Sequential(
            nn.Linear(latent_dim + action_dim, hidden), nn.LayerNorm(hidden), nn.ReLU()
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU())
            for _ in range(blocks)
        )
        self.delta = nn.Linear(hidden, latent_dim)
        self.reward = nn.Linear(hidden, 1)
        self.done = nn.Linear(hidden, 1)

    def forward(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.inp(torch.cat([z, a], -1))
        for block in self.blocks:
            x = x + block(x)
        return self.delta(x), self.reward(x).squeeze(-1), self.done(x).squeeze(-1)


class ResidualMLP(MemoryModel):
    step_weights: Tensor
    feature_weights: Tensor

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        hidden_dim: int = 256,
        blocks: int = 2,
        scale: float = 0.1,
        ensemble: int = 1,
        mode: str = "single",
        rollout_steps: int = 6,
        step_weights: list[float] | None = None,
        feature_weights: list[float] | None = None,
        tf_start: float = 1.0,
        tf_decay: float = 0.9,
        tf_mix: float | None = None,
        curriculum_epochs: int = 2,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.latent_dim, self.action_dim = latent_dim, action_dim
        self.scale, self.mode, self.rollout_steps = scale, mode, rollout_steps
        self.members = nn.ModuleList(
            _Member(latent_dim, action_dim, hidden_dim, blocks) for _ in range(ensemble)
        )
        weights = step_weights or [1.0] * rollout_steps
        if len(weights) < rollout_steps:
            raise ValueError(f"step_weights needs {rollout_steps} values, got {len(weights)}")
        self.register_buffer("step_weights", torch.tensor(weights[:rollout_steps]))
        fw = feature_weights or [1.0] * latent_dim
        if len(fw) != latent_dim:
            raise ValueError(
                f"feature_weights needs {latent_dim} values (one per z), got {len(fw)}"
            )
        self.register_buffer("feature_weights", torch.tensor(fw))
        self.tf_start, self.tf_decay, self.tf_mix = tf_start, tf_decay, tf_mix
        self.curriculum_epochs = curriculum_epochs
        self.epoch = 0  # set by the trainer: schedules depend on it

    @property
    def feature_dim(self) -> int:
        return 0

    def initial(self, batch: int, device: torch.device | str = "cpu") -> tuple[Tensor]:
        return (torch.zeros(batch, 0, device=device),)

    def hidden(self, state: tuple[Tensor]) -> Tensor:
        return state[0]

    def predict(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """z [B, Z], a [B, A] -> (next z, reward, done logit, disagreement), ensemble means."""
        outs = [m(z, a) for m in self.members]
        nexts = torch.stack([z + self.scale * d for d, _, _ in outs])
        reward = torch.stack([r for _, r, _ in outs]).mean(0)
        done = torch.stack([d for _, _, d in outs]).mean(0)
        spread = nexts.std(0, unbiased=False).mean(-1) if len(outs) > 1 else z.new_zeros(len(z))
        return nexts.mean(0), reward, done, spread

    def step(
        self, z: Tensor, action: Tensor, state: tuple[Tensor]
    ) -> tuple[ResidualOutput, tuple[Tensor]]:
        nxt, reward, done, spread = self.predict(z, action)
        out = ResidualOutput(
            nxt.unsqueeze(1), reward.unsqueeze(1), done.unsqueeze(1), spread.unsqueeze(1)
        )
        return out, state

    def sample_next(
        self,
        output: ResidualOutput,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        return output.z_next[:, -1]  # deterministic at any temperature

    def reward_done(self, output: ResidualOutput) -> tuple[Tensor, Tensor]:
        return output.reward[:, -1], output.done_logit[:, -1]

    def uncertainty(self, output: ResidualOutput) -> Tensor | None:
        return output.disagreement[:, -1] if len(self.members) > 1 else None

    def _weighted_se(self, pred: Tensor, target: Tensor) -> Tensor:
        return ((pred - target).pow(2) * self.feature_weights).mean(-1)

    def _member_loss(
        self, member: _Member, batch: MemoryBatch
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(z loss, reward loss, done loss, one-step z MSE) for one member."""
        z, a, mask = batch.z, batch.actions, batch.mask
        t_len = a.shape[1]
        denom = mask.sum().clamp(min=1.0)
        # one-step predictions from the true inputs: reward, done and the single-step loss
        delta, reward, done = member(z[:, :-1].reshape(-1, z.shape[-1]), a.reshape(-1, a.shape[-1]))
        pred1 = (z[:, :-1].reshape(-1, z.shape[-1]) + self.scale * delta).view_as(z[:, 1:])
        one_step = (self._weighted_se(pred1, z[:, 1:]) * mask).sum() / denom
        r_loss = ((reward.view_as(mask) - batch.rewards).pow(2) * mask).sum() / denom
        d_loss = (
            F.binary_cross_entropy_with_logits(done.view_as(mask), batch.dones, reduction="none")
            * mask
        ).sum() / denom
        mse1 = ((pred1 - z[:, 1:]).pow(2).mean(-1) * mask).sum() / denom
        if self.mode == "single":
            return one_step, r_loss, d_loss, mse1
        steps = self.rollout_steps
        if self.mode == "curriculum":
            steps = min(self.rollout_steps, 1 + self.epoch // max(self.curriculum_epochs, 1))
        if self.mode == "teacher_forcing":
            p_true = (
                self.tf_mix
                if self.tf_mix is not None
                else self.tf_start * self.tf_decay**self.epoch
            )
        else:
            p_true = 0.0
        steps = min(steps, t_len)
        starts = t_len - steps + 1  # every window of `steps` transitions
        cur = z[:, :starts]
        total = z.new_zeros(())
        weight_sum = 0.0
        for k in range(steps):
            inp_a = a[:, k : k + starts]
            d, _, _ = member(cur.reshape(-1, z.shape[-1]), inp_a.reshape(-1, a.shape[-1]))
            pred = cur + self.scale * d.view_as(cur)
            target = z[:, k + 1 : k + 1 + starts]
            m = mask[:, k : k + starts]
            w = float(self.step_weights[k])
            total = total + w * (self._weighted_se(pred, target) * m).sum() / m.sum().clamp(min=1.0)
            weight_sum += w
            if p_true > 0:
                use_true = (torch.rand(pred.shape[:2], device=pred.device) < p_true).unsqueeze(-1)
                pred = torch.where(use_true, target, pred)
            cur = pred
        return total / max(weight_sum, 1e-12), r_loss, d_loss, mse1

    def loss(
        self, batch: MemoryBatch, reward_weight: float = 1.0, done_weight: float = 1.0
    ) -> tuple[Tensor, dict[str, float]]:
        parts = [self._member_loss(m, batch) for m in self.members]  # type: ignore[arg-type]
        z_loss = torch.stack([p[0] for p in parts]).mean()
        r_loss = torch.stack([p[1] for p in parts]).mean()
        d_loss = torch.stack([p[2] for p in parts]).mean()
        total = z_loss + reward_weight * r_loss + done_weight * d_loss
        return total, {
            "loss": float(total.detach()),
            "z_loss": float(z_loss.detach()),
            "one_step_mse": float(torch.stack([p[3] for p in parts]).mean().detach()),
            "reward_loss": float(r_loss.detach()),
            "done_loss": float(d_loss.detach()),
        }
