"""One loop for the actor-critic methods (the idea of SB3's ``OnPolicyAlgorithm``).

The loop owns setup, resume, the real envs through V and M, periodic evaluation, the
score / stop / best-checkpoint / learning-curve rule and the checkpoints
(``<ns>/last`` after every iteration, ``<ns>/best`` on improvement); an algorithm supplies
only its optimiser and its iteration (collect, imagine, update). ``imagined_rollout`` is the
one imagination block every actor-critic reuses.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from worldmodels.config import Config
from worldmodels.data.store import EpisodeStore
from worldmodels.dream import DreamEnv, Dreaming, StartStates
from worldmodels.envs import EnvSpec
from worldmodels.progress import progress_bar
from worldmodels.rl.actor_critic import ActorCritic
from worldmodels.rl.latent_env import LatentVecEnv
from worldmodels.rl.ppo import Collector, Rollout
from worldmodels.runs import Context
from worldmodels.training.actor_critic_config import ActorCriticConfig, ImaginationConfig
from worldmodels.training.agent_io import (
    ac_kwargs,
    build_ac,
    periodic_eval,
    restore_rng,
    rng_state,
    save_agent,
    score_and_stop,
)
from worldmodels.training.scoring import AgentProgress, curve_point, progress_from_dict
from worldmodels.world_model import WorldModel


@dataclass
class Progress(AgentProgress):
    """An actor-critic run's counters, saved in ``<ns>/last`` (as a plain dict)."""

    imagined_steps: int = 0
    collect_steps: int = 0
    """Real env steps collected before the actor-critic (random pre-training data)."""


def imagined_envs(cfg: Config) -> int:
    """Dream envs per iteration so that imagined / (real + imagined) = imagination.ratio."""
    ic, ac = cfg.section(ImaginationConfig), cfg.section(ActorCriticConfig)
    if ic.ratio <= 0:
        return 0
    real = ac.num_envs * ac.n_steps
    return max(1, math.ceil(ic.ratio / (1 - ic.ratio) * real / ic.horizon))


def stack_starts(record: list[Any]) -> StartStates:
    """Dream start states from the (z, memory state) snapshots of a real rollout."""
    z = torch.cat([z for z, _ in record])
    n_parts = len(record[0][1])
    state = tuple(torch.cat([s[j] for _, s in record]) for j in range(n_parts))
    return StartStates(z, state, torch.zeros(len(z), dtype=torch.bool))


def imagined_rollout(
    cfg: Config, world: WorldModel, ac: ActorCritic, record: list[Any], it: int, where: str
) -> Rollout | None:
    """``imagination.horizon`` steps of the actor-critic in the dream, started from the real
    states a rollout just visited (``record``); None when ``imagination.ratio`` is 0."""
    n_dream = imagined_envs(cfg)
    if not n_dream:
        return None
    how = Dreaming(
        cfg.section(ImaginationConfig).horizon, cfg.memory.temperature, False, cfg.dream.done_mode
    )
    dream = DreamEnv(world, stack_starts(record), n_dream, how)
    collector = Collector(dream, ac, world.device, seed=cfg.seed * 104_729 + it)
    return collector.collect(cfg.section(ImaginationConfig).horizon, where)


class OnPolicyAlgorithm(Protocol):
    """What an actor-critic method adds to the loop."""

    seed_offset: int
    """``torch.manual_seed(cfg.seed + seed_offset)`` before the actor-critic is built."""

    def setup(self, ac: ActorCritic) -> torch.optim.Optimizer:
        """The optimiser (and anything else built once)."""

    def wrap(self, venv: LatentVecEnv) -> Any:
        """The env the collector steps (the latent env, or a recording wrapper of it)."""

    def iterate(
        self, collector: Collector, prog: Progress, it: int, where: str
    ) -> dict[str, float]:
        """Collect, imagine and update once; returns the scalars to log under ``train/``."""

    def after_iteration(self, prog: Progress, it: int, real_steps: int) -> None:
        """Anything between the update and the stop test (e.g. retraining M)."""

    def state(self) -> dict[str, Any]:
        """Weights saved with every checkpoint besides the actor-critic (e.g. V and M)."""

    def load(self, last: dict[str, Any]) -> None:
        """Restore them from ``<ns>/last``."""

    def loop_state(self) -> dict[str, Any]:
        """What its iterations carry from one to the next (a random stream, the previous
        step), saved in ``<ns>/last`` so a resumed run continues exactly."""

    def load_loop_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`loop_state` (after the collector has reset the envs)."""


def train_on_policy(
    algo: OnPolicyAlgorithm,
    ns: str,
    ctx: Context,
    world: WorldModel,
) -> Progress:
    run, cfg, spec, writer, progress = ctx.run, ctx.cfg, ctx.spec, ctx.writer, ctx.progress
    acfg = cfg.section(ActorCriticConfig)
    target = acfg.target_return if acfg.target_return is not None else spec.reward_threshold
    store = EpisodeStore(run.episodes)
    collect_steps = int(store.summary()["env_steps"])
    torch.manual_seed(cfg.seed + algo.seed_offset)
    ac = build_ac(ac_kwargs(cfg, world.feature_dim), spec).to(world.device)
    opt = algo.setup(ac)
    prog = Progress(collect_steps=collect_steps, real_env_steps=collect_steps)
    last: dict[str, Any] = {}
    if run.has(f"{ns}/last"):
        last = run.load(f"{ns}/last")
        prog = progress_from_dict(Progress, last["progress"])
        if prog.complete:
            return prog
        ac.load_state_dict(last["model"]["state_dict"])
        algo.load(last)
        opt.load_state_dict(last["optimizer"])
    recent: deque[float] = deque(prog.recent, maxlen=acfg.stop_window)
    snap = last.get("envs")
    venv = LatentVecEnv(cfg.env, world, acfg.num_envs, cfg.seed, store)
    collector = Collector(algo.wrap(venv), ac, world.device, cfg.seed)
    if snap and venv.restore(snap):  # the episodes in progress, replayed: an exact resume
        collector.obs = last["collector_obs"].numpy()
        algo.load_loop_state(last["loop"])
    if last:
        restore_rng(last["rng"])
    steps_before = prog.env_steps
    bar = progress_bar(total=acfg.total_steps, initial=steps_before, desc=ns, disable=not progress)

    def save(name: str, extra: dict[str, Any]) -> None:
        save_agent(run, f"{ns}/{name}", cfg, spec, ac, dataclasses.asdict(prog), extra)

    def resume_state() -> dict[str, Any]:
        return {
            **algo.state(),
            "optimizer": opt.state_dict(),
            "rng": rng_state(),
            "envs": venv.snapshot(),
            "collector_obs": torch.as_tensor(collector.obs),
            "loop": algo.loop_state(),
        }

    try:
        while prog.env_steps < acfg.total_steps and not prog.complete:
            t0 = time.time()
            it = prog.iteration + 1
            stats = algo.iterate(collector, prog, it, f"update {it}")
            for ret, _ in venv.finished:
                recent.append(ret)
            venv.finished.clear()
            prog.iteration = it
            prog.env_steps = steps_before + venv.env_steps
            prog.recent = list(recent)
            eval_score = _evaluate(cfg, spec, world, ac, it, prog, writer, target)
            real_steps = prog.collect_steps + prog.env_steps + prog.eval_steps
            prog.real_env_steps = real_steps
            algo.after_iteration(prog, it, real_steps)
            improved = _judge(cfg, prog, list(recent), eval_score, target)
            point = curve_point(eval_score, recent)
            if point is not None:
                run.log_curve(real_steps, point)
            if improved or not run.has(f"{ns}/best"):
                save("best", algo.state())
            save("last", resume_state())
            if recent:
                writer.add_scalar("rollout/ep_rew_mean", float(np.mean(recent)), real_steps)
            for k, v in stats.items():
                writer.add_scalar(f"train/{k}", v, real_steps)
            steps = acfg.num_envs * acfg.n_steps
            writer.add_scalar("time/fps", steps / max(time.time() - t0, 1e-9), real_steps)
            bar.update(prog.env_steps - bar.n)
            bar.set_postfix(ret=f"{np.mean(recent):.1f}" if recent else "-")
    finally:
        bar.close()
        venv.close()
    if not prog.complete:  # the budget was lowered below what is already done
        prog.complete = True
        save("last", resume_state())
    return prog


def _evaluate(
    cfg: Config,
    spec: EnvSpec,
    world: WorldModel,
    ac: ActorCritic,
    it: int,
    prog: Progress,
    writer: Any,
    target: float | None,
) -> float | None:
    counters = {"real_env_steps": prog.real_env_steps, "eval_steps": prog.eval_steps}
    score = periodic_eval(cfg, spec, world, ac, it, counters, writer, target)
    prog.eval_steps = counters["eval_steps"]
    return score


def _judge(
    cfg: Config, prog: Progress, recent: list[float], eval_score: float | None, target: float | None
) -> bool:
    counters = dataclasses.asdict(prog)
    _, improved = score_and_stop(cfg, counters, recent, eval_score, target)
    prog.best_score, prog.complete = counters["best_score"], counters["complete"]
    return improved
