"""``--method wm-ppo`` (seed 002): PPO on a mix of real and imagined experience.

Each iteration: ``ac.num_envs x ac.n_steps`` real steps through V and M (every finished
episode lands in the episode store), then imagined rollouts of ``imagination.horizon`` steps
started from the real states just visited (``DreamEnv``), as many as make the imagined share
of the batch ``imagination.ratio``; one PPO update on both. Every ``imagination.retrain_every``
iterations M is retrained on all real data so far. ``agent/last`` is written after every
iteration, so a kill loses at most the iteration in progress and ``--resume`` continues.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from worldmodels.config import Config
from worldmodels.data.store import EpisodeStore, is_validation
from worldmodels.dream import DreamEnv, StartStates
from worldmodels.envs import EnvSpec
from worldmodels.rl.latent_env import LatentVecEnv
from worldmodels.rl.ppo import Collector, Rollout, cat_rollouts, ppo_update
from worldmodels.runs import RunDir
from worldmodels.training.agent_io import (
    ac_kwargs,
    build_ac,
    periodic_eval,
    restore_rng,
    rng_state,
    save_agent,
    score_and_stop,
)
from worldmodels.training.memory import finetune_memory
from worldmodels.world_model import WorldModel


def imagined_envs(cfg: Config) -> int:
    """Dream envs per iteration so that imagined / (real + imagined) = imagination.ratio."""
    ic, ac = cfg.imagination, cfg.ac
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


def train_wm_ppo(
    run: RunDir,
    cfg: Config,
    spec: EnvSpec,
    world: WorldModel,
    writer: Any,
    progress: bool = True,
) -> dict[str, Any]:
    ac_cfg, ic = cfg.ac, cfg.imagination
    target = ac_cfg.target_return if ac_cfg.target_return is not None else spec.reward_threshold
    store = EpisodeStore(run.episodes)
    collect_steps = int(store.summary()["env_steps"])
    torch.manual_seed(cfg.seed + 500)
    ac = build_ac(ac_kwargs(cfg, world.feature_dim), spec).to(world.device)
    opt = torch.optim.Adam(ac.parameters(), lr=ac_cfg.lr, eps=1e-5)
    prog: dict[str, Any] = {
        "iteration": 0,
        "env_steps": 0,
        "imagined_steps": 0,
        "collect_steps": collect_steps,
        "best_score": -math.inf,
        "real_env_steps": collect_steps,
        "recent": [],
        "complete": False,
    }
    if run.has("wm_ppo/last"):
        last = run.load("wm_ppo/last")
        prog = last["progress"]
        if prog.get("complete"):
            return prog
        ac.load_state_dict(last["model"]["state_dict"])
        opt.load_state_dict(last["optimizer"])
        restore_rng(last["rng"])
    recent: deque[float] = deque(prog["recent"], maxlen=ac_cfg.stop_window)
    gen = torch.Generator().manual_seed(cfg.seed + 501 + prog["iteration"])
    venv = LatentVecEnv(cfg.env, world, ac_cfg.num_envs, cfg.seed * 7919 + prog["iteration"], store)
    collector = Collector(venv, ac, world.device, cfg.seed * 7919 + prog["iteration"])
    n_dream = imagined_envs(cfg)
    steps_before = prog["env_steps"]
    bar = tqdm(
        total=ac_cfg.total_steps,
        initial=steps_before,
        desc="wm-ppo",
        unit="step",
        disable=not progress,
    )
    try:
        while prog["env_steps"] < ac_cfg.total_steps and not prog["complete"]:
            t0 = time.time()
            it = prog["iteration"] + 1
            where = f"iteration {it}"
            record: list[Any] = []
            parts: list[Rollout] = [collector.collect(ac_cfg.n_steps, where, record)]
            if n_dream:
                dream = DreamEnv(
                    world,
                    stack_starts(record),
                    n_dream,
                    ic.horizon,
                    cfg.memory.temperature,
                    initial_only=False,
                    done_mode=cfg.dream.done_mode,
                )
                dream_collector = Collector(dream, ac, world.device, seed=cfg.seed * 104_729 + it)
                parts.append(dream_collector.collect(ic.horizon, where))
            batch = cat_rollouts(parts)
            advs, rets = zip(
                *(p.advantages(ac_cfg.gamma, ac_cfg.gae_lambda) for p in parts), strict=True
            )
            batch["advantages"] = torch.cat([a.reshape(-1) for a in advs])
            batch["returns"] = torch.cat([r.reshape(-1) for r in rets])
            stats = ppo_update(
                ac,
                opt,
                batch,
                ac_cfg.ppo_epochs,
                ac_cfg.minibatch_size,
                ac_cfg.clip_range,
                ac_cfg.value_coef,
                ac_cfg.entropy_coef,
                ac_cfg.max_grad_norm,
                where,
                gen,
            )
            for ret, _ in venv.finished:
                recent.append(ret)
            venv.finished.clear()
            prog["iteration"] = it
            prog["env_steps"] = steps_before + venv.env_steps
            prog["imagined_steps"] += len(parts[-1]) if n_dream else 0
            prog["recent"] = list(recent)
            eval_score = periodic_eval(cfg, spec, world, ac, it, prog, writer, target)
            real_steps = prog["collect_steps"] + prog["env_steps"] + prog.get("eval_steps", 0)
            prog["real_env_steps"] = real_steps
            if ic.retrain_every and it % ic.retrain_every == 0:
                indices = [
                    i
                    for i in store.valid_indices()
                    if not is_validation(i, cfg.collect.val_fraction)
                ]
                m = finetune_memory(
                    run, cfg, spec, world, indices, ic.retrain_epochs, cfg.seed + it
                )
                for k, v in m.items():
                    writer.add_scalar(f"memory/{k}", v, real_steps)
            _, improved = score_and_stop(cfg, prog, list(recent), eval_score, target)
            if eval_score is not None or recent:  # the score the stop rule judges by
                curve_point = eval_score if eval_score is not None else float(np.mean(recent))
                run.log_curve(real_steps, curve_point)
            if improved or not run.has("wm_ppo/best"):
                save_agent(run, "wm_ppo/best", cfg, spec, ac, dict(prog))
            save_agent(
                run,
                "wm_ppo/last",
                cfg,
                spec,
                ac,
                prog,
                {"optimizer": opt.state_dict(), "rng": rng_state()},
            )
            if recent:
                writer.add_scalar("rollout/ep_rew_mean", float(np.mean(recent)), real_steps)
            for k, v in stats.items():
                writer.add_scalar(f"train/{k}", v, real_steps)
            writer.add_scalar(
                "imagination/ratio",
                len(parts[-1]) / len(batch["rewards"]) if n_dream else 0.0,
                real_steps,
            )
            writer.add_scalar("imagination/horizon", ic.horizon, real_steps)
            writer.add_scalar("time/fps", len(parts[0]) / max(time.time() - t0, 1e-9), real_steps)
            bar.update(prog["env_steps"] - bar.n)
            bar.set_postfix(ret=f"{np.mean(recent):.1f}" if recent else "-")
    finally:
        bar.close()
        venv.close()
    if not prog["complete"]:  # the budget was lowered below what is already done
        prog["complete"] = True
        save_agent(
            run,
            "wm_ppo/last",
            cfg,
            spec,
            ac,
            prog,
            {"optimizer": opt.state_dict(), "rng": rng_state()},
        )
    return prog
