"""Deterministic Markov dynamics (the Pong object-state model and the joint latent-MLP
world model) and the training modes they share.

A subclass supplies ``transition(z, a) -> (z_{t+1}, r_t, done logit)``; the state is empty, so
the controller's h is empty too. Training modes (``mode``), all on sequences [B, T+1, Z] with a
mask:
- ``single``: one-step MSE from the true z_t at every t;
- ``multistep``: open-loop rollouts of ``rollout_steps`` from every start, gradients through
  all steps, per-step weights;
- ``teacher_forcing``: rollouts where each step's input is the true z_t with probability p
  (p decays per epoch from ``tf_start`` by ``tf_decay``, or a fixed ``tf_mix``);
- ``curriculum``: multistep with the rollout length growing 1 -> 2 -> ... -> rollout_steps
  every ``curriculum_epochs`` epochs.
Per-feature weights scale the squared error of each z dimension. Targets are
``batch.z_target`` where given (joint training detaches them), else ``batch.z``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodels.models.memory.base import MemoryBatch, MemoryModel

MODES = ("single", "multistep", "teacher_forcing", "curriculum")


class MarkovOutput(NamedTuple):
    z_next: Tensor  # [B, 1, Z]
    reward: Tensor  # [B, 1]
    done_logit: Tensor  # [B, 1]


class MarkovDynamics(MemoryModel):
    step_weights: Tensor
    feature_weights: Tensor
    recurrent = False

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
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
        self.mode, self.rollout_steps = mode, rollout_steps
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
        self.epoch: int | None = 0  # set by the trainer: schedules depend on it

    @abstractmethod
    def transition(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """z [N, Z], a [N, A] -> (z_{t+1} [N, Z], reward [N], done logit [N])."""

    @property
    def feature_dim(self) -> int:
        return 0

    def set_epoch(self, epoch: int | None) -> None:
        """The schedules' epoch; None = the fixed validation objective (full-length open-loop
        rollouts, no teacher forcing)."""
        self.epoch = epoch

    def initial(self, batch: int, device: torch.device | str = "cpu") -> tuple[Tensor]:
        return (torch.zeros(batch, 0, device=device),)

    def hidden(self, state: tuple[Tensor]) -> Tensor:
        return state[0]

    def step(
        self, z: Tensor, action: Tensor, state: tuple[Tensor]
    ) -> tuple[MarkovOutput, tuple[Tensor]]:
        nxt, reward, done = self.transition(z, action)
        return MarkovOutput(nxt.unsqueeze(1), reward.unsqueeze(1), done.unsqueeze(1)), state

    def sample_next(
        self,
        output: MarkovOutput,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        return output.z_next[:, -1]  # deterministic at any temperature

    def reward_done(self, output: MarkovOutput, z_next: Tensor) -> tuple[Tensor, Tensor]:
        return output.reward[:, -1], output.done_logit[:, -1]

    def step_loss(
        self, output: MarkovOutput, z_next: Tensor, reward: Tensor, done: Tensor
    ) -> Tensor:
        r_pred, d_logit = self.reward_done(output, z_next)
        return (
            (output.z_next[:, -1] - z_next).pow(2).mean()
            + (r_pred - reward).pow(2).mean()
            + F.binary_cross_entropy_with_logits(d_logit, done)
        )

    def _weighted_se(self, pred: Tensor, target: Tensor) -> Tensor:
        return ((pred - target).pow(2) * self.feature_weights).mean(-1)

    def _flat_transition(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """transition on [B, T, *] inputs, outputs shaped [B, T, Z], [B, T], [B, T]."""
        nxt, reward, done = self.transition(z.reshape(-1, z.shape[-1]), a.reshape(-1, a.shape[-1]))
        return nxt.view_as(z), reward.view(z.shape[:2]), done.view(z.shape[:2])

    def _rollout_steps(self) -> tuple[int, float]:
        """(rollout length, probability of feeding the truth) for the current epoch."""
        steps = self.rollout_steps
        if self.epoch is None:
            return steps, 0.0
        if self.mode == "curriculum":
            steps = min(self.rollout_steps, 1 + self.epoch // max(self.curriculum_epochs, 1))
        if self.mode != "teacher_forcing":
            return steps, 0.0
        p_true = (
            self.tf_mix if self.tf_mix is not None else self.tf_start * self.tf_decay**self.epoch
        )
        return steps, p_true

    def loss(
        self, batch: MemoryBatch, reward_weight: float = 1.0, done_weight: float = 1.0
    ) -> tuple[Tensor, dict[str, float]]:
        z, a, mask = batch.z, batch.actions, batch.mask
        target_z = batch.z_target if batch.z_target is not None else z
        t_len = a.shape[1]
        denom = mask.sum().clamp(min=1.0)
        # one-step predictions from the true inputs: reward, done and the single-step loss
        pred1, reward, done = self._flat_transition(z[:, :-1], a)
        one_step = (self._weighted_se(pred1, target_z[:, 1:]) * mask).sum() / denom
        r_loss = ((reward - batch.rewards).pow(2) * mask).sum() / denom
        d_loss = (
            F.binary_cross_entropy_with_logits(done, batch.dones, reduction="none") * mask
        ).sum() / denom
        mse1 = ((pred1 - target_z[:, 1:]).pow(2).mean(-1) * mask).sum() / denom
        z_loss = one_step
        if self.mode != "single":
            z_loss = self._rollout_loss(z, target_z, a, mask, t_len)
        total = z_loss + reward_weight * r_loss + done_weight * d_loss
        return total, {
            "loss": float(total.detach()),
            "z_loss": float(z_loss.detach()),
            "one_step_mse": float(mse1.detach()),
            "reward_loss": float(r_loss.detach()),
            "done_loss": float(d_loss.detach()),
        }

    def _rollout_loss(
        self, z: Tensor, target_z: Tensor, a: Tensor, mask: Tensor, t_len: int
    ) -> Tensor:
        steps, p_true = self._rollout_steps()
        steps = min(steps, t_len)
        starts = t_len - steps + 1  # every window of `steps` transitions
        cur = z[:, :starts]
        total = z.new_zeros(())
        weight_sum = 0.0
        for k in range(steps):
            pred, _, _ = self._flat_transition(cur, a[:, k : k + starts])
            target = target_z[:, k + 1 : k + 1 + starts]
            m = mask[:, k : k + starts]
            w = float(self.step_weights[k])
            total = total + w * (self._weighted_se(pred, target) * m).sum() / m.sum().clamp(min=1.0)
            weight_sum += w
            if p_true > 0:
                use_true = (torch.rand(pred.shape[:2], device=pred.device) < p_true).unsqueeze(-1)
                pred = torch.where(use_true, z[:, k + 1 : k + 1 + starts], pred)
            cur = pred
        return total / max(weight_sum, 1e-12)
