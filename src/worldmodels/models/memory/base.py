"""The memory protocol every M implements: state is passed in and returned, never stored."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]
"""A memory model's recurrent state: a tuple of tensors whose first axis is the batch."""


class MemoryBatch(NamedTuple):
    z: Tensor  # [B, T+1, Z] latents z_0..z_T
    actions: Tensor  # [B, T, A] action features
    rewards: Tensor  # [B, T]
    dones: Tensor  # [B, T] terminated flags
    mask: Tensor  # [B, T] 1 for real steps, 0 for padding
    z_target: Tensor | None = None  # [B, T+1, Z] targets when they differ from z (detached)
    state: State | None = None  # M's state before z_0 (carried from the episode's start)


class MemoryModel(nn.Module):
    latent_dim: int
    action_dim: int
    recurrent: bool = True
    """False where the state is empty (Markov models): nothing to carry between windows."""
    point_is_mean: bool = True
    """True where ``sample_next`` at tau = 0 is M's mean prediction (Gaussians and their
    mixtures); False where it is a mode (the RSSM's categorical latents), whose mean only
    samples estimate."""

    @property
    @abstractmethod
    def feature_dim(self) -> int:
        """Size of the recurrent feature h the controller sees next to z."""

    @abstractmethod
    def initial(self, batch: int, device: torch.device | str = "cpu") -> Any:
        """The state before the first step."""

    @abstractmethod
    def step(self, z: Tensor, action: Tensor, state: Any) -> tuple[Any, Any]:
        """One step for a batch: (z [B, Z], action features [B, A], state) -> (output, state)."""

    def advance(self, z: Tensor, actions: Tensor, state: Any) -> Any:
        """The state after steps z [B, T, Z], actions [B, T, A] from ``state``."""
        for t in range(z.shape[1]):
            _, state = self.step(z[:, t], actions[:, t], state)
        return state

    @abstractmethod
    def hidden(self, state: Any) -> Tensor:
        """The recurrent feature h [B, feature_dim] of a state."""

    @abstractmethod
    def sample_next(
        self, output: Any, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """z_{t+1} [B, Z] from a one-step output: sampled at temperature tau, the point
        prediction (mean) when tau == 0."""

    @abstractmethod
    def reward_done(self, output: Any, z_next: Tensor) -> tuple[Tensor, Tensor]:
        """(predicted reward r_t [B], done logit [B]) of a one-step output whose next latent
        is z_next [B, Z] (M's sample in a dream; the heads of some Ms read it)."""

    def set_epoch(self, epoch: int | None) -> None:
        """Training schedules that depend on the epoch (teacher forcing, curriculum) read it."""

    @abstractmethod
    def step_loss(self, output: Any, z_next: Tensor, reward: Tensor, done: Tensor) -> Tensor:
        """M's prediction loss of one step's output against the true z_{t+1} [B, Z], r_t [B]
        and terminated_t [B] (float), averaged over the batch (A2C's end-to-end M loss)."""

    def uncertainty(self, output: Any) -> Tensor | None:
        """Disagreement of an ensemble about z_{t+1} [B], or None for a single model."""
        return None

    @abstractmethod
    def loss(
        self, batch: Any, reward_weight: float = 1.0, done_weight: float = 1.0
    ) -> tuple[Tensor, dict[str, float]]:
        """Training loss on a batch of sequences, and its parts as floats."""
