"""Model-predictive control with M (the planning controllers of the enhanced
World Models scripts, PETS-style).

Every candidate action sequence of one decision -- for every env in the batch -- is one row of
a single ``WorldModel.imagine`` call (τ = 0: M's point prediction). A sequence's value is

    sum_t gamma^t r_t P(alive at t)  +  gamma^H V(s_H) P(alive after H)

with P(alive at t) = prod_{s<t} (1 - p_done_s) from M's done head, and V a critic when one is
given (an actor-critic's value net), else 0. With an ensemble M, ``aggregate="mean"`` scores
the members' mean prediction; ``"pessimistic"`` rolls every member on its own and keeps the
worst value per sequence.

- ``DiscretePlanner``: every action sequence when A^H <= ``max_sequences`` (else that many
  random sequences, each first action equally often); an action's value is its best sequence's;
  optionally blended with a base actor-critic: the action is drawn from
  p = (1 - w) pi(a|s) + w onehot(argmax Q) (the enhanced World Models scripts: w = 0.3).
- ``CEMPlanner``: Gaussian over action sequences, ``iterations`` rounds of ``population``
  samples (clipped to the action bounds), refit to the ``elites`` best; warm-started from the
  previous decision's plan shifted by one step.
- ``MPPIPlanner``: the same sampling, mean updated with softmax(value / lambda) weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldmodels.config import PlannerConfig
from worldmodels.errors import UserError
from worldmodels.models.memory.ensemble import Ensemble
from worldmodels.rl.actor_critic import ActorCritic
from worldmodels.world_model import WorldModel

ValueFn = Callable[[Tensor], Tensor]  # features [B, F] -> value [B]

DISCRETE, CONTINUOUS = ("enumerate",), ("cem", "mppi")
KINDS = DISCRETE + CONTINUOUS


def check_planner(world: WorldModel, settings: PlannerConfig, reward_trained: bool = True) -> str:
    """The planner kind to use, or a one-line error for a run it cannot plan with
    (``reward_trained``: whether M's reward head was trained, memory.reward_weight > 0)."""
    kind = settings.kind
    discrete = world.spec.action_kind == "discrete"
    if kind == "auto":
        kind = "enumerate" if discrete else "cem"
    if kind not in KINDS:
        raise UserError(f"unknown planner '{kind}'; use one of auto, {', '.join(KINDS)}")
    if settings.horizon <= 0:
        raise UserError(f"the planning horizon must be >= 1, got {settings.horizon}")
    if discrete and kind in CONTINUOUS:
        raise UserError(
            f"planner '{kind}' optimises continuous actions but {world.spec.env_id} has "
            f"discrete actions; use --planner enumerate"
        )
    if not discrete and kind in DISCRETE:
        raise UserError(
            f"planner 'enumerate' needs discrete actions but {world.spec.env_id} has "
            f"continuous actions; use --planner cem or mppi"
        )
    if not reward_trained:
        raise UserError(
            "this run's M was trained without its reward head (memory.reward_weight=0), so "
            "there is no reward to plan with; train M with memory.reward_weight > 0"
        )
    if settings.aggregate not in ("mean", "pessimistic"):
        raise UserError("planner aggregate must be mean or pessimistic")
    return kind


def _members(world: WorldModel, state: Any, aggregate: str) -> list[tuple[WorldModel, Any]]:
    memory = world.memory
    if aggregate != "pessimistic" or not isinstance(memory, Ensemble):
        return [(world, state)]
    parts = memory.split_state(state)
    return [
        (WorldModel(world.vision, m, world.spec, world.device), s)  # type: ignore[arg-type]
        for m, s in zip(memory.members, parts, strict=True)
    ]


@torch.no_grad()
def sequence_values(
    world: WorldModel,
    z: Tensor,
    state: Any,
    seqs: Tensor,
    gamma: float,
    value_fn: ValueFn | None = None,
    aggregate: str = "mean",
) -> Tensor:
    """Values [N, S] of S action sequences per start: z [N, Z], state (batch N), seqs
    [N, S, H] (discrete) or [N, S, H, A]; all N * S rollouts in one ``imagine`` batch."""
    n, s, h = seqs.shape[:3]
    flat = seqs.reshape(n * s, h, *seqs.shape[3:])
    z_rep = z.repeat_interleave(s, 0)
    disc = gamma ** torch.arange(h, device=z.device, dtype=torch.float32)
    values = []
    for w, st in _members(world, state, aggregate):
        st_rep = tuple(t.repeat_interleave(s, 0) for t in st)
        out = w.imagine(z_rep, st_rep, lambda f, t: flat[:, t], h, temperature=0.0)
        survive = torch.cumprod(1.0 - out.done_prob, 1)
        alive_before = torch.cat([torch.ones_like(survive[:, :1]), survive[:, :-1]], 1)
        ret = (disc * out.rewards * alive_before).sum(1)
        if value_fn is not None:
            ret = ret + gamma**h * value_fn(out.features[:, -1]) * survive[:, -1]
        values.append(ret)
    stacked = torch.stack(values)
    agg = stacked.min(0).values if aggregate == "pessimistic" else stacked.mean(0)
    return agg.view(n, s)


class DiscretePlanner:
    def __init__(
        self,
        world: WorldModel,
        settings: PlannerConfig,
        base: ActorCritic | None = None,
    ):
        self.world, self.s, self.base = world, settings, base
        a, h = world.spec.action_dim, settings.horizon
        self.rng = torch.Generator().manual_seed(settings.seed)
        self.value_fn: ValueFn | None = base.value if base is not None else None
        self.exhaustive = a**h <= settings.max_sequences
        if self.exhaustive:
            self.all = torch.tensor(list(itertools.product(range(a), repeat=h)), dtype=torch.long)

    def _sequences(self, n: int) -> Tensor:
        if self.exhaustive:
            return self.all.to(self.world.device).expand(n, *self.all.shape)
        a, h, m = self.world.spec.action_dim, self.s.horizon, self.s.max_sequences
        seqs = torch.randint(a, (n, m, h), generator=self.rng)
        seqs[:, :, 0] = torch.arange(m) % a  # every first action equally often
        return seqs.to(self.world.device)

    def reset(self, n: int) -> None:
        return None

    @torch.no_grad()
    def plan(self, z: Tensor, state: Any, plan_state: None = None) -> tuple[Tensor, None]:
        n, a = len(z), self.world.spec.action_dim
        seqs = self._sequences(n)
        vals = sequence_values(
            self.world, z, state, seqs, self.s.gamma, self.value_fn, self.s.aggregate
        )
        q = torch.full((n, a), -torch.inf, device=z.device)
        q = q.scatter_reduce(1, seqs[:, :, 0], vals, "amax")
        best = q.argmax(-1)
        if self.base is None or self.s.blend >= 1.0:
            return best, None
        probs = self.base.dist(self.world.features(z, state)).cat.probs  # type: ignore[union-attr]
        mixed = (1 - self.s.blend) * probs + self.s.blend * torch.nn.functional.one_hot(best, a)
        # act by sampling the mixture (its argmax would be the plan whenever blend >= 0.5)
        picked = torch.multinomial(mixed.cpu(), 1, generator=self.rng).squeeze(-1)
        return picked.to(z.device), None


class CEMPlanner:
    """CEM (``kind="cem"``) or MPPI (``kind="mppi"``) over continuous action sequences."""

    def __init__(
        self,
        world: WorldModel,
        settings: PlannerConfig,
        kind: str = "cem",
        base: ActorCritic | None = None,
    ):
        self.world, self.s, self.kind, self.base = world, settings, kind, base
        spec = world.spec
        self.low = torch.tensor(spec.action_low, dtype=torch.float32, device=world.device)
        self.high = torch.tensor(spec.action_high, dtype=torch.float32, device=world.device)
        self.rng = torch.Generator().manual_seed(settings.seed)
        self.value_fn: ValueFn | None = base.value if base is not None else None

    def reset(self, n: int) -> Tensor:
        """The plan state: the mean action sequence [n, H, A], starting mid-range."""
        mid = (self.low + self.high) / 2
        return mid.expand(n, self.s.horizon, len(mid)).clone()

    @torch.no_grad()
    def plan(self, z: Tensor, state: Any, mean: Tensor) -> tuple[Tensor, Tensor]:
        s = self.s
        n, h, a = mean.shape
        half = (self.high - self.low) / 2
        std = torch.full_like(mean, s.init_std) * half
        value_fn = self.value_fn
        for _ in range(s.iterations):
            noise = torch.randn((n, s.population, h, a), generator=self.rng).to(mean.device)
            samples = torch.clamp(mean.unsqueeze(1) + noise * std.unsqueeze(1), self.low, self.high)
            vals = sequence_values(self.world, z, state, samples, s.gamma, value_fn, s.aggregate)
            if self.kind == "mppi":
                w = torch.softmax((vals - vals.max(1, keepdim=True).values) / s.mppi_lambda, 1)
                mean = (w[:, :, None, None] * samples).sum(1)
            else:
                idx = vals.topk(s.elites, 1).indices
                elite = samples.gather(1, idx[:, :, None, None].expand(-1, -1, h, a))
                mean, std = elite.mean(1), elite.std(1, unbiased=False) + 1e-3 * half
        action = mean[:, 0]
        shifted = torch.cat([mean[:, 1:], mean[:, -1:]], 1)  # warm start for the next decision
        return action, shifted


def build_planner(
    world: WorldModel,
    settings: PlannerConfig,
    base: ActorCritic | None = None,
    reward_trained: bool = True,
    value: Callable[[Tensor], Tensor] | None = None,
) -> DiscretePlanner | CEMPlanner:
    """The planner for ``settings.kind``; the value at the horizon is ``value`` (features ->
    [B, 1] or [B]) if given, else the base actor-critic's critic, else none."""
    kind = check_planner(world, settings, reward_trained)
    if settings.blend < 1.0 and (base is None or kind != "enumerate"):
        why = "CEM and MPPI do not blend" if base is not None else "this run has none"
        raise UserError(
            f"planner.blend={settings.blend} mixes the plan with an actor-critic's policy over "
            f"discrete actions, and {why}; use planner.blend=1"
        )
    planner: DiscretePlanner | CEMPlanner
    if kind == "enumerate":
        planner = DiscretePlanner(world, settings, base)
    else:
        planner = CEMPlanner(world, settings, kind, base)
    if value is not None:
        planner.value_fn = lambda f: value(f).reshape(len(f))
    return planner


class PlannerPolicy:
    """A planner acting in real envs (``rollout.Policy``): state = (M's state, plan state)."""

    def __init__(self, world: WorldModel, planner: DiscretePlanner | CEMPlanner):
        self.world, self.planner = world, planner
        self.decisions = 0

    def reset(self, n: int):
        return self.world.initial(n), self.planner.reset(n)

    @torch.no_grad()
    def act(self, obs: np.ndarray, state):
        mem_state, plan_state = state
        z = self.world.observe(obs, mem_state)
        actions, plan_state = self.planner.plan(z, mem_state, plan_state)
        if not torch.isfinite(actions.float()).all():
            raise FloatingPointError("the planner produced a non-finite action")
        self.decisions += len(z)
        _, mem_state = self.world.step(z, actions, mem_state)
        return actions.cpu().numpy(), (mem_state, plan_state)
