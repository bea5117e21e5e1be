"""An ensemble of any memory model (``memory.ensemble = K``): K independently initialised
members trained on the same batches, each with its own loss.

Predictions: at tau = 0 the members' mean prediction of z_{t+1}; at tau > 0 each batch row
draws from one randomly chosen member (PETS's trajectory sampling), so the dream carries the
model's epistemic uncertainty. Reward and done are the members' mean. ``uncertainty`` is the
members' disagreement (std of their point predictions, averaged over z). The controller's h is
member 0's (independently trained recurrent states do not live in one space). The state is
one flat tuple of tensors (the members' states one after another), like every M's state, so
code that stores, slices or concatenates states never needs to know about ensembles.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from worldmodels.models.memory.base import MemoryModel


class EnsembleOutput(NamedTuple):
    members: tuple[Any, ...]
    points: Tensor  # [K, B, Z] each member's point prediction of z_{t+1}


class Ensemble(MemoryModel):
    def __init__(self, members: list[MemoryModel]):
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least 2 members")
        self.members = nn.ModuleList(members)
        self.latent_dim, self.action_dim = members[0].latent_dim, members[0].action_dim
        self._sizes = [len(m.initial(1)) for m in members]
        self.recurrent = members[0].recurrent

    def split_state(self, state: tuple[Tensor, ...]) -> list[tuple[Tensor, ...]]:
        parts, i = [], 0
        for n in self._sizes:
            parts.append(tuple(state[i : i + n]))
            i += n
        return parts

    def _each(self) -> list[MemoryModel]:
        return list(self.members)  # type: ignore[arg-type]

    @property
    def feature_dim(self) -> int:
        return self._each()[0].feature_dim

    def set_epoch(self, epoch: int | None) -> None:
        for m in self._each():
            m.set_epoch(epoch)

    def initial(self, batch: int, device: torch.device | str = "cpu") -> tuple[Tensor, ...]:
        return tuple(t for m in self._each() for t in m.initial(batch, device))

    def advance(self, z: Tensor, actions: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        parts = zip(self._each(), self.split_state(state), strict=True)
        return tuple(t for m, s in parts for t in m.advance(z, actions, s))

    def hidden(self, state: tuple[Tensor, ...]) -> Tensor:
        return self._each()[0].hidden(self.split_state(state)[0])

    def step(
        self, z: Tensor, action: Tensor, state: tuple[Tensor, ...]
    ) -> tuple[EnsembleOutput, tuple[Tensor, ...]]:
        outs, states = zip(
            *(
                m.step(z, action, s)
                for m, s in zip(self._each(), self.split_state(state), strict=True)
            ),
            strict=True,
        )
        points = torch.stack(
            [m.sample_next(o, 0.0) for m, o in zip(self._each(), outs, strict=True)]
        )
        return EnsembleOutput(tuple(outs), points), tuple(t for s in states for t in s)

    def sample_next(
        self,
        output: EnsembleOutput,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        if temperature == 0:
            return output.points.mean(0)
        draws = torch.stack(
            [
                m.sample_next(o, temperature, generator)
                for m, o in zip(self._each(), output.members, strict=True)
            ]
        )
        k, b = draws.shape[:2]
        pick = torch.randint(k, (b,), generator=generator).to(draws.device)
        return draws[pick, torch.arange(b, device=draws.device)]

    def reward_done(self, output: EnsembleOutput, z_next: Tensor) -> tuple[Tensor, Tensor]:
        pairs = [
            m.reward_done(o, z_next) for m, o in zip(self._each(), output.members, strict=True)
        ]
        return (
            torch.stack([r for r, _ in pairs]).mean(0),
            torch.stack([d for _, d in pairs]).mean(0),
        )

    def uncertainty(self, output: EnsembleOutput) -> Tensor:
        return output.points.std(0, unbiased=False).mean(-1)

    def step_loss(self, output: EnsembleOutput, z_next: Tensor, reward: Tensor, done: Tensor):
        losses = [
            m.step_loss(o, z_next, reward, done)
            for m, o in zip(self._each(), output.members, strict=True)
        ]
        return torch.stack(losses).mean()

    def loss(
        self, batch: Any, reward_weight: float = 1.0, done_weight: float = 1.0
    ) -> tuple[Tensor, dict[str, float]]:
        states = self.split_state(batch.state) if batch.state is not None else None
        results = [
            m.loss(batch._replace(state=states[i] if states else None), reward_weight, done_weight)
            for i, m in enumerate(self._each())
        ]
        total = torch.stack([t for t, _ in results]).mean()
        parts = {k: sum(p[k] for _, p in results) / len(results) for k in results[0][1]}
        parts["loss"] = float(total.detach())
        return total, parts
