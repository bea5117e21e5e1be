"""MDN-RNN: an LSTM over [z_t, a_t] whose output h_{t+1} parameterises a Gaussian mixture over
z_{t+1}, plus a reward head (r_t, MSE) and a done head (terminated_t, BCE): linear on that
output (``heads_read="hidden"``, the paper's), or MLPs on z_{t+1} (``"next"``).

The recurrent state is a value passed in and returned (``(h, c)``, each [B, H]); the module
holds parameters only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodels.models.memory.base import MemoryBatch, MemoryModel, State
from worldmodels.models.memory.mdn import mdn_mean, mdn_nll, mdn_sample


class MemoryOutput(NamedTuple):
    logit_pi: Tensor  # [B, T, Z, K]
    mu: Tensor  # [B, T, Z, K]
    log_sigma: Tensor  # [B, T, Z, K]
    reward: Tensor | None  # [B, T]; None where the heads read z_{t+1} (``NextStateHeads``)
    done_logit: Tensor | None  # [B, T]; as reward
    hidden: Tensor  # [B, T, H]  h_{t+1}, the feature the controller sees at t+1


class NextStateHeads(nn.Module):
    """r_t and the done logit of terminated_t from z_{t+1}, each by an MLP. Whether an episode
    ends is a property of the state it reaches (a pole past its angle), which a linear head
    on h, read before z_{t+1} is drawn, blurs into the data's end rate. Neither head reads h:
    in a dream h drifts where no data was and a controller finds the h where a head errs
    (on CartPole's tuning seeds, heads that also read h taught CMA-ES less); z_{t+1} stays
    a state. A reward that depends on the action itself (a fuel cost) is then read off the
    state reached only."""

    def __init__(self, latent_dim: int, width: int):
        super().__init__()
        self.reward = _mlp(latent_dim, width)
        self.done = _mlp(latent_dim, width)

    def forward(self, z_next: Tensor) -> tuple[Tensor, Tensor]:
        """z_next [..., Z] -> (reward [...], done logit [...])."""
        return self.reward(z_next).squeeze(-1), self.done(z_next).squeeze(-1)


def _mlp(inputs: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, width), nn.ELU(), nn.Linear(width, width), nn.ELU(), nn.Linear(width, 1)
    )


class MixtureMemory(MemoryModel):
    """A sequence model whose ``forward(z, actions, state) -> (MemoryOutput, state)`` ends in
    the mixture-density heads (MDN-RNN, transformer): everything else of the protocol."""

    hidden_dim: int
    next_heads: NextStateHeads | None

    def _mixture_heads(
        self, hidden_dim: int, latent_dim: int, num_mixtures: int, heads_read: str = "hidden"
    ) -> None:
        """The heads: the mixture over z_{t+1} on the features h; reward and done logit on h
        (``heads_read="hidden"``) or on z_{t+1} (``"next"``)."""
        if heads_read not in ("hidden", "next"):
            raise ValueError(f"heads_read must be 'hidden' or 'next', got {heads_read!r}")
        self.mdn = nn.Linear(hidden_dim, latent_dim * num_mixtures * 3)
        self.next_heads = None
        if heads_read == "next":
            self.next_heads = NextStateHeads(latent_dim, hidden_dim)
        else:
            self.reward_head = nn.Linear(hidden_dim, 1)
            self.done_head = nn.Linear(hidden_dim, 1)

    def _heads(self, out: Tensor) -> MemoryOutput:
        """Features [B, T, H] -> the mixture over z_{t+1} of each step, and its reward and
        done logit where the heads read h (None where they wait for z_{t+1})."""
        b, t, _ = out.shape
        params = self.mdn(out).view(b, t, self.latent_dim, -1, 3)
        reward = done_logit = None
        if self.next_heads is None:
            reward, done_logit = self.reward_head(out).squeeze(-1), self.done_head(out).squeeze(-1)
        return MemoryOutput(params[..., 0], params[..., 1], params[..., 2], reward, done_logit, out)

    def _with_ends(self, output: MemoryOutput, z_next: Tensor) -> MemoryOutput:
        """``output`` with the reward and done logit of each step filled in from z_{t+1}
        [B, T, Z] (where the heads read it; unchanged otherwise)."""
        if self.next_heads is None:
            return output
        reward, done_logit = self.next_heads(z_next)
        return output._replace(reward=reward, done_logit=done_logit)

    @property
    def feature_dim(self) -> int:
        return self.hidden_dim

    def forward(self, z: Tensor, actions: Tensor, state: Any = None) -> tuple[MemoryOutput, Any]:
        raise NotImplementedError

    def step(self, z: Tensor, action: Tensor, state: State) -> tuple[MemoryOutput, State]:
        """One step: z [B, Z], action [B, A]. Outputs have T = 1."""
        return self.forward(z.unsqueeze(1), action.unsqueeze(1), state)

    def advance(self, z: Tensor, actions: Tensor, state: State) -> State:
        return self.forward(z, actions, state)[1]

    def hidden(self, state: State) -> Tensor:
        return state[0]

    def sample_next(
        self,
        output: MemoryOutput,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        return mixture_sample_next(output, temperature, generator)

    def reward_done(self, output: MemoryOutput, z_next: Tensor) -> tuple[Tensor, Tensor]:
        if self.next_heads is not None:
            return self.next_heads(z_next)
        assert output.reward is not None and output.done_logit is not None
        return output.reward[:, -1], output.done_logit[:, -1]

    def step_loss(
        self, output: MemoryOutput, z_next: Tensor, reward: Tensor, done: Tensor
    ) -> Tensor:
        """Mixture NLL of z_{t+1} + reward MSE + done BCE of the last step, batch means."""
        r_pred, d_logit = self.reward_done(output, z_next)
        nll = mdn_nll(output.logit_pi[:, -1], output.mu[:, -1], output.log_sigma[:, -1], z_next)
        return (
            nll.mean()
            + (r_pred - reward).pow(2).mean()
            + F.binary_cross_entropy_with_logits(d_logit, done)
        )

    def loss(
        self, batch: MemoryBatch, reward_weight: float = 1.0, done_weight: float = 1.0
    ) -> tuple[Tensor, dict[str, float]]:
        out, _ = self.forward(batch.z[:, :-1], batch.actions, batch.state)
        # the heads read the z_{t+1} the mixture is fit to
        out = self._with_ends(out, sequence_targets(batch))
        return mixture_sequence_loss(out, batch, reward_weight, done_weight)


class MDNRNN(MixtureMemory):
    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        hidden_dim: int = 256,
        num_mixtures: int = 5,
        heads_read: str = "hidden",
    ):
        super().__init__()
        self.latent_dim, self.action_dim = latent_dim, action_dim
        self.hidden_dim, self.num_mixtures = hidden_dim, num_mixtures
        self.lstm = nn.LSTM(latent_dim + action_dim, hidden_dim, batch_first=True)
        self._mixture_heads(hidden_dim, latent_dim, num_mixtures, heads_read)

    def initial(self, batch: int, device: torch.device | str = "cpu") -> State:
        zeros = torch.zeros(batch, self.hidden_dim, device=device)
        return zeros, zeros.clone()

    def forward(
        self, z: Tensor, actions: Tensor, state: State | None = None
    ) -> tuple[MemoryOutput, State]:
        """z [B, T, Z], actions [B, T, A] -> predictions for steps t+1 and the final state."""
        check_sequences(z, actions)
        if state is None:
            state = self.initial(z.shape[0], z.device)
        h0, c0 = state
        out, (h, c) = self.lstm(torch.cat([z, actions], -1), (h0.unsqueeze(0), c0.unsqueeze(0)))
        return self._heads(out), (h.squeeze(0), c.squeeze(0))


def check_sequences(z: Tensor, actions: Tensor) -> None:
    assert z.dim() == 3 and actions.dim() == 3 and z.shape[:2] == actions.shape[:2], (
        f"expected z [B, T, Z] and actions [B, T, A], got {tuple(z.shape)}, {tuple(actions.shape)}"
    )


def mixture_sample_next(
    output: MemoryOutput, temperature: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """z_{t+1} of the last step: sampled at temperature tau, the mixture mean at tau = 0."""
    pi, mu, log_sigma = output.logit_pi[:, -1], output.mu[:, -1], output.log_sigma[:, -1]
    if temperature == 0:
        return mdn_mean(pi, mu)
    return mdn_sample(pi, mu, log_sigma, temperature, generator)


def sequence_targets(batch: MemoryBatch) -> Tensor:
    """The z_{t+1} [B, T, Z] a sequence's predictions are fit to."""
    return (batch.z_target if batch.z_target is not None else batch.z)[:, 1:]


def mixture_sequence_loss(
    out: MemoryOutput, batch: MemoryBatch, reward_weight: float, done_weight: float
) -> tuple[Tensor, dict[str, float]]:
    """Masked mean over a batch of sequences of NLL(z_{t+1}) + weighted reward MSE and done
    BCE, and the parts as floats."""
    assert out.reward is not None and out.done_logit is not None
    target = sequence_targets(batch)
    mask = batch.mask
    denom = mask.sum().clamp(min=1.0)
    nll = (mdn_nll(out.logit_pi, out.mu, out.log_sigma, target).mean(-1) * mask).sum() / denom
    reward = ((out.reward - batch.rewards).pow(2) * mask).sum() / denom
    done = (
        F.binary_cross_entropy_with_logits(out.done_logit, batch.dones, reduction="none") * mask
    ).sum() / denom
    total = nll + reward_weight * reward + done_weight * done
    return total, {
        "loss": float(total.detach()),
        "nll": float(nll.detach()),
        "reward_loss": float(reward.detach()),
        "done_loss": float(done.detach()),
    }
