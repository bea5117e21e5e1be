"""Train the controller C with CMA-ES (the ``cma`` package) in the real environment.

Each generation's whole population is one batch: P candidates x R rollouts = P*R envs stepped
together, with one batched V encode, one batched controller forward (an einsum over candidate
parameters) and one batched M step per env step. All candidates of a generation see the same R
episode seeds (common random numbers), so fitness differences come from the parameters.

Resume: after every generation ``controller/last.pt`` holds counters and the best parameters,
and the pickled CMA-ES state (as a uint8 tensor). That pickle is signed with a per-user
key (``runs.sign``) and refused unless this machine wrote it.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable
from typing import Any, Protocol

import cma
import numpy as np
import torch

from worldmodels.config import Config, to_dict
from worldmodels.controllers.linear import PolicyShape, policy_shape
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import EnvSpec
from worldmodels.errors import TrainingDivergedError, UserError
from worldmodels.progress import progress_bar
from worldmodels.runs import Context, RunDir, sign, verify
from worldmodels.seeding import Stream, reset_seeds
from worldmodels.training.population import PopulationEvaluator
from worldmodels.training.scoring import reached
from worldmodels.world_model import WorldModel

LOG = logging.getLogger(__name__)


def controller_kwargs(cfg: Config, world: WorldModel, spec: EnvSpec) -> dict[str, Any]:
    shape = policy_shape(cfg.controller.kind, world.feature_dim, spec, cfg.controller.hidden_dims)
    return {"in_dim": shape.in_dim, "out_dim": shape.out_dim, "hidden": list(shape.hidden)}


def _load_es(run: RunDir, last: dict[str, Any]) -> cma.CMAEvolutionStrategy:
    state, signature = last.get("es_state"), last.get("es_signature")
    data = state.numpy().tobytes() if isinstance(state, torch.Tensor) else b""
    if not isinstance(signature, str) or not data or not verify(data, signature):
        folder = run.checkpoints / "controller"
        raise UserError(
            f"the CMA-ES state in {run.ckpt_path('controller/last')} is unsigned or was not "
            f"written by worldmodels on this machine, so it is not unpickled; resume on the "
            f"machine that wrote it, or move {folder} aside (mv {folder} {folder}.untrusted) "
            f"to train the controller afresh"
        )
    return pickle.loads(data)  # safe: signed with this machine's key, checked above


def _new_es(n: int, cfg: Config) -> cma.CMAEvolutionStrategy:
    noise = np.random.RandomState(cfg.seed + 303)  # own stream, pickled with the ES state
    opts = {
        "popsize": cfg.controller.population,
        "seed": cfg.seed + 303,
        "verbose": -9,
        "randn": noise.randn,
        "CMA_diagonal": n > 2000,
    }
    return cma.CMAEvolutionStrategy(np.zeros(n), cfg.controller.sigma, opts)


def train_seeds(master: int, generation: int, rollouts: int) -> list[int]:
    return reset_seeds(master, Stream.TRAIN, generation * rollouts, rollouts)


class Evaluator(Protocol):
    def evaluate(
        self, params: np.ndarray, seeds: list[int], chunks: int
    ) -> tuple[np.ndarray, int]: ...

    def close(self) -> None: ...


def train_cmaes(
    ctx: Context,
    world: WorldModel,
    make_evaluator: Callable[[PolicyShape], Evaluator] | None = None,
    rollouts: int | None = None,
    eval_episodes: int | None = None,
) -> dict[str, Any]:
    """CMA-ES over controller parameters. Fitness comes from ``make_evaluator(shape)``: by
    default the real env (through the executor); ``DreamEvaluator`` for training in the dream,
    where ``rollouts`` dream episodes per candidate replace ``controller.rollouts`` and
    ``eval_episodes`` the evaluation's ``controller.eval_episodes``."""
    run, cfg, spec, writer, progress = ctx.run, ctx.cfg, ctx.spec, ctx.writer, ctx.progress
    cc = cfg.controller
    rollouts = rollouts or cc.rollouts
    eval_episodes = eval_episodes or cc.eval_episodes
    kwargs = controller_kwargs(cfg, world, spec)
    shape = PolicyShape(kwargs["in_dim"], kwargs["out_dim"], tuple(kwargs["hidden"]))
    target = cc.target_return if cc.target_return is not None else spec.reward_threshold
    consumed = {
        "vision_sha256": run.digest("vision/best"),
        "memory_sha256": run.digest("memory/best"),
    }
    start, env_steps, best_score = 0, 0, -math.inf
    collected = EpisodeStore(run.episodes).summary()["env_steps"]  # before the controller
    prog: dict[str, Any]
    best_params = np.zeros(shape.num_params)
    last = run.load("controller/last") if run.has("controller/last") else None
    if last is not None and not (
        run.made_from(last.get("vision_sha256"), "vision/best")
        and run.made_from(last.get("memory_sha256"), "memory/best")
    ):
        moved = run.set_aside("controller", "stale")
        LOG.warning("the controller was trained on another V or M; moved it to %s and "
                    "training it afresh", moved)  # fmt: skip
        last = None
    if last is not None:
        prog = last["progress"]
        if prog.get("complete"):
            return prog
        es = _load_es(run, last)
        start, env_steps = int(prog["generation"]), int(prog["env_steps"])
        best_score = float(prog["best_score"])
        best_params = last["best_params"].numpy().astype(np.float64)
    else:
        es = _new_es(shape.num_params, cfg)

    evaluator: Evaluator = (
        make_evaluator(shape)
        if make_evaluator
        else PopulationEvaluator(run, cfg, spec, shape, world.device)
    )
    bar = progress_bar(
        range(start, cc.generations),
        desc="cma-es",
        unit="gen",
        disable=not progress,
        initial=start,
        total=cc.generations,
    )
    complete = False
    prog = {}
    try:
        for gen in bar:
            t0 = time.time()
            solutions = np.asarray(es.ask())
            returns, steps = evaluator.evaluate(
                solutions, train_seeds(cfg.seed, gen, rollouts), cc.eval_chunks
            )
            fitness = returns.mean(axis=1)
            if not np.all(np.isfinite(fitness)):
                kept = "was kept" if run.has("controller/last") else "does not exist yet"
                raise TrainingDivergedError(
                    f"controller fitness is not finite at generation {gen + 1}; the last good "
                    f"checkpoint {kept} (try a smaller controller.sigma)"
                )
            es.tell(list(solutions), list(-fitness))
            env_steps += steps
            eval_score = math.nan
            if (gen + 1) % cc.eval_every == 0 or gen + 1 == cc.generations:
                candidates = np.stack([es.mean, solutions[int(np.argmax(fitness))]])
                seeds = reset_seeds(cfg.seed, Stream.SELECT, gen * eval_episodes, eval_episodes)
                ev, steps = evaluator.evaluate(candidates, seeds, chunks=2)
                env_steps += steps
                scores = ev.mean(axis=1)
                k = int(np.argmax(scores))
                eval_score = float(scores[k])
                if eval_score > best_score:
                    best_score, best_params = eval_score, candidates[k].copy()
                    _save_best(
                        run,
                        cfg,
                        spec,
                        kwargs,
                        best_params,
                        consumed,
                        gen + 1,
                        best_score,
                        env_steps,
                    )
            if steps:  # the learning curve (dream: no real-env fitness): the evaluation of
                # the mean / best candidate when there was one, else the population's mean
                point = eval_score if not math.isnan(eval_score) else float(returns.mean())
                run.log_curve(collected + env_steps, point)
            elapsed = max(time.time() - t0, 1e-9)
            if steps:  # real-env fitness; dream fitness is in train/fitness_*
                writer.add_scalar("rollout/ep_rew_mean", float(returns.mean()), env_steps)
            writer.add_scalar("train/fitness_max", float(fitness.max()), gen + 1)
            writer.add_scalar("train/fitness_mean", float(fitness.mean()), gen + 1)
            writer.add_scalar("train/sigma", float(es.sigma), gen + 1)
            if not math.isnan(eval_score):
                writer.add_scalar(
                    "eval/mean_reward", eval_score, gen + 1 if make_evaluator else env_steps
                )
            writer.add_scalar("time/fps", steps / elapsed, gen + 1)
            bar.set_postfix(best=f"{best_score:.1f}", mean=f"{fitness.mean():.1f}")
            complete = gen + 1 == cc.generations or reached(best_score, target)
            prog = {
                "generation": gen + 1,
                "env_steps": env_steps,
                "best_score": best_score,
                "complete": complete,
                "last_fitness_mean": float(fitness.mean()),
            }
            _save_last(run, cfg, spec, kwargs, es, best_params, consumed, prog)
            writer.flush()
            if complete:
                break
    finally:
        bar.close()
        evaluator.close()
    if not complete and start >= cc.generations:
        prog = {
            "generation": start,
            "env_steps": env_steps,
            "best_score": best_score,
            "complete": True,
        }
        _save_last(run, cfg, spec, kwargs, es, best_params, consumed, prog)
    return prog


def _payload(
    cfg: Config, spec: EnvSpec, kwargs: dict[str, Any], params: np.ndarray, consumed: dict[str, str]
) -> dict[str, Any]:
    from worldmodels.controllers.linear import FlatController

    module = FlatController(kwargs["in_dim"], kwargs["out_dim"], kwargs["hidden"])
    module.set_flat(params)
    return {
        "model": {"name": cfg.controller.kind, "kwargs": kwargs, "state_dict": module.state_dict()},
        "spec": spec.shape_signature(),
        "config": to_dict(cfg),
        **consumed,
    }


def _save_best(
    run: RunDir,
    cfg: Config,
    spec: EnvSpec,
    kwargs: dict[str, Any],
    params: np.ndarray,
    consumed: dict[str, str],
    generation: int,
    score: float,
    env_steps: int,
) -> None:
    run.save(
        "controller/best",
        {
            **_payload(cfg, spec, kwargs, params, consumed),
            "progress": {"generation": generation, "score": score, "env_steps": env_steps},
        },
    )


def _save_last(
    run: RunDir,
    cfg: Config,
    spec: EnvSpec,
    kwargs: dict[str, Any],
    es: cma.CMAEvolutionStrategy,
    best_params: np.ndarray,
    consumed: dict[str, str],
    progress: dict[str, Any],
) -> None:
    data = es.pickle_dumps()
    run.save(
        "controller/last",
        {
            **_payload(cfg, spec, kwargs, np.asarray(es.mean), consumed),
            "best_params": torch.as_tensor(best_params, dtype=torch.float64),
            "es_state": torch.frombuffer(bytearray(data), dtype=torch.uint8),
            "es_signature": sign(data),
            "progress": progress,
        },
    )
