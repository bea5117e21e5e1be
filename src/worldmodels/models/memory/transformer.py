"""Temporal transformer memory (the M of the enhanced World Models scripts): causal
self-attention over the sequence of projected [z_t, a_t], predicting z_{t+1} (a Gaussian
mixture per dimension, as the MDN-RNN), r_t and done_t from the output at t.

Attention is windowed: position t attends to positions t - max_len + 1 .. t, with a learned
bias per head and distance (a relative position, so the same weights serve any offset in a long
sequence). The state is a fixed-size history: for every layer, the inputs of the last
``max_len - 1`` positions (and which of them exist yet). Acting step by step therefore costs
O(max_len) per step and memory never grows, and because every layer sees exactly the window it
sees in a full-sequence forward, step-by-step predictions equal the full-sequence ones (tested).

The gradient fix of the enhanced World Models scripts: the current step's inputs z_t and a_t
are never detached, so a loss on the prediction reaches V's encoder (tested end to end); the
history is whatever the caller passes in (stored states are detached, as their history buffer
was).

State: a flat tuple ``(h, valid, cache_1, ..., cache_L)`` with h [B, d] (the feature the
controller sees: the last output), valid [B, max_len - 1] (1.0 where a past position exists)
and each cache [B, max_len - 1, d].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from worldmodels.models.memory.base import State
from worldmodels.models.memory.mdn_rnn import (
    MemoryOutput,
    MixtureMemory,
    check_sequences,
)


class CausalBlock(nn.Module):
    """Pre-norm transformer block: windowed causal attention with relative position bias,
    then a 4x MLP; each with a residual connection."""

    def __init__(self, d_model: int, heads: int, max_len: int):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"hidden_dim {d_model} is not a multiple of heads {heads}")
        self.heads, self.max_len = heads, max_len
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.rel_bias = nn.Parameter(torch.zeros(heads, max_len))
        self.ln2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x: Tensor, past: Tensor, past_valid: Tensor) -> Tensor:
        """x [B, T, d] new positions, past [B, P, d] earlier inputs of this layer, past_valid
        [B, P] bool -> outputs [B, T, d] of the new positions."""
        b, t, d = x.shape
        p = past.shape[1]
        full = torch.cat([past, x], dim=1)
        q, k, v = self.qkv(self.ln1(full)).split(d, dim=-1)
        q = q[:, p:]
        dh = d // self.heads

        def heads(y: Tensor) -> Tensor:
            return y.reshape(b, y.shape[1], self.heads, dh).transpose(1, 2)

        scores = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(dh)  # [B, H, T, P+T]
        dist = (p + torch.arange(t, device=x.device))[:, None] - torch.arange(
            p + t, device=x.device
        )[None, :]
        allowed = (dist >= 0) & (dist < self.max_len)
        valid = torch.cat([past_valid, torch.ones(b, t, dtype=torch.bool, device=x.device)], 1)
        allowed = allowed[None, :, :] & valid[:, None, :]  # [B, T, P+T]
        scores = scores + self.rel_bias[:, dist.clamp(0, self.max_len - 1)]
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        att = torch.softmax(scores, dim=-1) @ heads(v)  # [B, H, T, dh]
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.ff(self.ln2(x))


class TemporalTransformer(MixtureMemory):
    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        hidden_dim: int = 128,
        num_mixtures: int = 5,
        layers: int = 2,
        heads: int = 4,
        max_len: int = 32,
        heads_read: str = "hidden",
    ):
        super().__init__()
        self.latent_dim, self.action_dim = latent_dim, action_dim
        self.hidden_dim, self.max_len = hidden_dim, max_len
        self.input_proj = nn.Linear(latent_dim + action_dim, hidden_dim)
        self.blocks = nn.ModuleList(CausalBlock(hidden_dim, heads, max_len) for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden_dim)
        self._mixture_heads(hidden_dim, latent_dim, num_mixtures, heads_read)

    def initial(self, batch: int, device: torch.device | str = "cpu") -> State:
        p = self.max_len - 1
        caches = [torch.zeros(batch, p, self.hidden_dim, device=device) for _ in self.blocks]
        return (
            torch.zeros(batch, self.hidden_dim, device=device),
            torch.zeros(batch, p, device=device),
            *caches,
        )

    def forward(
        self, z: Tensor, actions: Tensor, state: State | None = None
    ) -> tuple[MemoryOutput, State]:
        """z [B, T, Z], actions [B, T, A] -> predictions for steps t+1 and the final state."""
        check_sequences(z, actions)
        b, t, _ = z.shape
        if state is None:
            state = self.initial(b, z.device)
        p = self.max_len - 1
        past_valid = state[1] > 0.5
        x = self.input_proj(torch.cat([z, actions], dim=-1))  # no detach: gradients reach V
        caches = []
        for block, past in zip(self.blocks, state[2:], strict=True):
            full = torch.cat([past, x], dim=1)
            caches.append(full[:, full.shape[1] - p :])
            x = block(x, past, past_valid)
        out = self.ln_f(x)
        valid = torch.cat([state[1], torch.ones(b, t, device=z.device)], dim=1)
        new_state = (out[:, -1], valid[:, valid.shape[1] - p :], *caches)
        return self._heads(out), (new_state)
