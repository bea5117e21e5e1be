"""CMA-ES fitness inside the dream (Ha & Schmidhuber's VizDoom experiment).

The same ``evaluate(params [P, N], seeds, chunks) -> (returns [P, R], real env steps)``
interface as the real-env ``PopulationEvaluator``, so ``train_cmaes`` runs unchanged: the whole
population x rollouts is one batch through ``WorldModel.imagine``, and no real step is taken.
All candidates of a generation start from the same R real start states (common random
numbers), drawn with a generator seeded by the generation's episode seeds.
"""

from __future__ import annotations

import numpy as np
import torch

from worldmodels.controllers.linear import PolicyShape, batched_forward, outputs_to_actions
from worldmodels.dream import StartStates
from worldmodels.errors import TrainingDivergedError
from worldmodels.world_model import WorldModel


class DreamEvaluator:
    def __init__(
        self,
        world: WorldModel,
        starts: StartStates,
        shape: PolicyShape,
        horizon: int,
        temperature: float,
        initial_only: bool = True,
        done_mode: str = "threshold",
    ):
        self.world, self.starts, self.shape = world, starts, shape
        self.horizon, self.temperature = horizon, temperature
        self.initial_only, self.done_mode = initial_only, done_mode
        self.dream_steps = 0

    @torch.no_grad()
    def evaluate(
        self, params: np.ndarray, seeds: list[int], chunks: int = 1
    ) -> tuple[np.ndarray, int]:
        p, r = len(params), len(seeds)
        first = np.random.SeedSequence([int(seeds[0]), r]).generate_state(1, np.uint64)[0]
        gen = torch.Generator().manual_seed(int(first))
        z, state = self.starts.sample(r, gen, self.initial_only)
        z = z.repeat(p, 1)  # candidate-major: row = candidate * r + rollout
        state = tuple(s.repeat(p, *([1] * (s.dim() - 1))) for s in state)
        weights = torch.as_tensor(np.asarray(params), dtype=torch.float32, device=z.device)

        def policy(features: torch.Tensor, t: int) -> torch.Tensor:
            raw = batched_forward(self.shape, weights, features.view(p, r, -1))
            actions = outputs_to_actions(raw, self.world.spec)
            return actions.reshape(p * r, *actions.shape[2:])

        out = self.world.imagine(
            z,
            state,
            policy,
            self.horizon,
            self.temperature,
            gen,
            self.done_mode,
            until_all_done=True,
        )
        returns = (out.rewards * out.alive).sum(1).view(p, r).double().cpu().numpy()
        if not np.all(np.isfinite(returns)):
            raise TrainingDivergedError("the dream produced a non-finite reward")
        self.dream_steps += int(out.alive.sum())
        return returns, 0

    def close(self) -> None:
        pass
