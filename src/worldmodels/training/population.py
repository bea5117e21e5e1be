"""Evaluating a CMA-ES population through the executor (inline, local processes or Ray).

The population is cut into a fixed number of blocks (``controller.eval_chunks``), one task
each. Every block is computed the same way whichever worker runs it, so 1 or N workers give
bit-identical fitness and the same CMA-ES trajectory. A task carries plain data: the run
directory and the sha256 of the V and M checkpoints (a worker loads them itself and refuses a
mismatch), the env config (the env is built in the worker), parameters and seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from worldmodels.agent import ControllerPolicy
from worldmodels.config import Config, EnvConfig
from worldmodels.controllers.linear import PolicyShape
from worldmodels.data.rollout import EnvPool, run_batch
from worldmodels.envs import EnvSpec
from worldmodels.errors import UserError
from worldmodels.parallel import FailurePolicy, make_executor
from worldmodels.runs import RunDir
from worldmodels.world_model import WorldModel


@dataclass(frozen=True)
class PopulationTask:
    run_dir: str
    vision_sha256: str
    memory_sha256: str
    env: dict[str, Any]
    spec: dict[str, Any]
    shape: tuple[int, int, tuple[int, ...]]
    device: str
    first: int
    params: np.ndarray  # [k, N] candidates first .. first + k - 1
    seeds: tuple[int, ...]
    max_steps: int

    def describe(self) -> str:
        last = self.first + len(self.params) - 1
        return (
            f"CMA-ES candidates {self.first}..{last} on {self.env['id']} "
            f"(episode seeds {self.seeds[0]}..{self.seeds[-1]})"
        )


# one world model and one env pool per worker process, rebuilt only when the task's differ
_CACHE: dict[str, tuple[Any, Any]] = {}


def _world(task: PopulationTask):
    from worldmodels.world_model import load_world_model

    key = f"{task.run_dir}|{task.vision_sha256}|{task.memory_sha256}|{task.device}"
    if _CACHE.get("world", (None,))[0] != key:
        run = RunDir(task.run_dir)
        found = (
            run.digest("vision/best"),
            run.digest("memory/best"),
        )
        if found != (task.vision_sha256, task.memory_sha256):
            raise UserError(
                f"the V/M checkpoints in {run.checkpoints} changed during controller "
                f"training; restart train-controller"
            )
        spec = EnvSpec.from_dict(task.spec)
        _CACHE["world"] = (key, load_world_model(run, spec, torch.device(task.device)))
    return _CACHE["world"][1]


def _pool(task: PopulationTask) -> EnvPool:
    key = repr(sorted(task.env.items()))
    if _CACHE.get("pool", (None,))[0] != key:
        if "pool" in _CACHE:
            _CACHE["pool"][1].close()
        _CACHE["pool"] = (key, EnvPool(EnvConfig(**task.env)))
    return _CACHE["pool"][1]


def run_population_task(task: PopulationTask) -> tuple[np.ndarray, int]:
    """Worker entry point: returns ([k, len(seeds)] returns, real env steps)."""
    in_dim, out_dim, hidden = task.shape
    return evaluate_params(
        _pool(task),
        EnvSpec.from_dict(task.spec),
        _world(task),
        PolicyShape(in_dim, out_dim, hidden),
        task.params,
        list(task.seeds),
        task.max_steps,
    )


class PopulationEvaluator:
    """``evaluate(params [P, N], seeds, chunks) -> (returns [P, R], env steps)``."""

    def __init__(
        self, run: RunDir, cfg: Config, spec: EnvSpec, shape: PolicyShape, device: torch.device
    ):
        self.base: dict[str, Any] = {
            "run_dir": str(run.root),
            "vision_sha256": run.digest("vision/best"),
            "memory_sha256": run.digest("memory/best"),
            "env": asdict(cfg.env),
            "spec": spec.to_dict(),
            "shape": (shape.in_dim, shape.out_dim, shape.hidden),
            "device": str(device),
            "max_steps": cfg.controller.max_steps,
        }
        self.executor = make_executor(
            cfg.parallel.executor,
            cfg.controller.workers,
            cfg.parallel.ray_address,
            FailurePolicy(cfg.parallel.task_timeout, cfg.parallel.max_retries),
        )

    def evaluate(self, params: np.ndarray, seeds: list[int], chunks: int) -> tuple[np.ndarray, int]:
        blocks = [b for b in np.array_split(np.arange(len(params)), chunks) if len(b)]
        tasks = [
            PopulationTask(first=int(b[0]), params=params[b], seeds=tuple(seeds), **self.base)
            for b in blocks
        ]
        returns = np.zeros((len(params), len(seeds)))
        steps = 0
        for task, (block_returns, block_steps) in self.executor.map_unordered(
            run_population_task, tasks
        ):
            returns[task.first : task.first + len(task.params)] = block_returns
            steps += block_steps
        return returns, steps

    def close(self) -> None:
        self.executor.close()


def evaluate_params(
    pool: EnvPool,
    spec: EnvSpec,
    world: WorldModel,
    shape: PolicyShape,
    params: np.ndarray,
    seeds: list[int],
    max_steps: int = 0,
) -> tuple[np.ndarray, int]:
    """params [P, N], each run on every seed -> (returns [P, len(seeds)], env steps)."""
    p, r = params.shape[0], len(seeds)
    policy = ControllerPolicy(world, shape, params, repeat=r)
    result = run_batch(pool, spec, policy, seeds * p, max_steps)
    return result.returns.reshape(p, r), result.env_steps
