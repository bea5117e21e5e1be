"""Returns and advantages as pure functions of ``[B, T]`` tensors.

Shape contract (B sequences, T steps each, index t = the transition s_t --a_t--> s'_t):

- ``rewards[b, t]``: r_t.
- ``values[b, t]``: V(s_t).
- ``next_values[b, t]``: V(s'_t), the value of the state *this transition reached*. Where the
  episode was truncated at t (time limit, horizon), s'_t is the final observation, not the
  next episode's first one; where it terminated, the value is ignored.
- ``terminated[b, t]``: s'_t is terminal: nothing is bootstrapped after it.
- ``truncated[b, t]``: the episode was cut at t: bootstrap with V(s'_t) but do not carry the
  lambda-trace across into step t+1 (a different episode).

Termination vs truncation is the whole difference between a correct and a biased return:
a time-limited episode did not end, so its last step still has a future worth V(s'_t).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(*tensors: Tensor) -> None:
    shape = tensors[0].shape
    for x in tensors:
        if x.dim() != 2 or x.shape != shape:
            shapes = [tuple(t.shape) for t in tensors]
            raise ValueError(f"returns expect [B, T] tensors of one shape, got {shapes}")


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2015) -> (advantages, returns), [B, T].

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},   done = terminated | truncated
    returns = A + V(s_t)  (the lambda-return targets of the value function)
    """
    _check(rewards, values, next_values, terminated, truncated)
    term = terminated.float()
    cut = torch.maximum(term, truncated.float())
    delta = rewards + gamma * (1.0 - term) * next_values - values
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = delta[:, t] + gamma * lam * (1.0 - cut[:, t]) * running
        adv[:, t] = running
    return adv, adv + values


def td_lambda(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> Tensor:
    """TD(lambda) returns (the recursive form used by Dreamer's imagined critic) -> [B, T].

    G_t = r_t + gamma * (1 - terminated_t) * ((1 - lam) * V(s'_t) + lam * G_{t+1}),
    where G_{t+1} is replaced by V(s'_t) at the last step and where the episode was truncated.
    ``terminated`` may be a probability (1 - a continue head's): it scales the discount only,
    as in Dreamer's imagined returns. With ``next_values[t] == values[t + 1]`` inside episodes
    this equals ``gae(...)[1]``.
    """
    _check(rewards, next_values, terminated, truncated)
    term = terminated.float()
    cut = truncated.float()  # a terminal step's (1 - term) already drops G_{t+1}
    out: list[Tensor] = []  # stacked at the end, so gradients flow (dynamics backprop)
    nxt = next_values[:, -1]
    for t in range(rewards.shape[1] - 1, -1, -1):
        boot = next_values[:, t]
        follow = cut[:, t] * boot + (1.0 - cut[:, t]) * nxt if t < rewards.shape[1] - 1 else boot
        step = rewards[:, t] + gamma * (1.0 - term[:, t]) * ((1 - lam) * boot + lam * follow)
        nxt = step.to(rewards.dtype)
        out.append(nxt)
    return torch.stack(out[::-1], 1) if out else torch.zeros_like(rewards)


def mc_or_lambda(lam_returns: Tensor, mc_returns: Tensor, how: str) -> Tensor:
    """Value targets from λ-returns and Monte Carlo returns [B, T] (NaN where unknown, e.g. an
    episode still in progress): ``mc`` takes the Monte Carlo return where it is known, ``max``
    the larger of the two (MCAC, Wilcox et al. 2022), ``lambda`` the λ-return."""
    _check(lam_returns, mc_returns)
    if how == "lambda":
        return lam_returns
    pick = mc_returns if how == "mc" else torch.maximum(lam_returns, mc_returns)
    return torch.where(torch.isnan(mc_returns), lam_returns, pick)


def normalise(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero mean, unit std over all elements (advantage normalisation)."""
    if x.numel() < 2:
        return x - x.mean()
    return (x - x.mean()) / (x.std() + eps)
