"""The Dreamer training loop: the world model learns continuously from a replay of all real
experience, and the actor-critic learns only from trajectories the world model imagines.

One loop, top to bottom: act in the real env (random until ``prefill`` steps), add each step to
the replay, and -- ``train_ratio`` replayed steps per real step -- update the agent on a
replayed batch (``agent.py``). At every episode end: the episode goes to the store
(atomically), the score / curve / stop / best rule runs, and ``dreamer/last`` is saved with
everything a resume needs, so a kill loses at most the episode in progress.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from worldmodels.config import Config
from worldmodels.data.replay import Replay
from worldmodels.data.store import Episode, EpisodeStore
from worldmodels.envs import action_to_env, cap_frames, make_env, random_action
from worldmodels.progress import progress_bar
from worldmodels.runs import Context, restore_np_rng
from worldmodels.seeding import Stream, reset_seed
from worldmodels.training.agent_io import restore_rng as restore_torch_rng
from worldmodels.training.dreamer.agent import Dreamer
from worldmodels.training.dreamer.checkpoints import NS, DreamerProgress, payload
from worldmodels.training.dreamer.config import DreamerConfig
from worldmodels.training.dreamer.replay import make_replay, rebuild
from worldmodels.training.scoring import (
    curve_point,
    judged_score,
    progress_from_dict,
    reached,
)


def train_dreamer(ctx: Context) -> DreamerProgress:
    """Train until ``dreamer.total_steps`` real env steps or the target; resumable."""
    run, cfg, spec, device, writer = ctx.run, ctx.cfg, ctx.spec, ctx.device, ctx.writer
    progress = ctx.progress
    dc = cfg.section(DreamerConfig)
    target = dc.target_return if dc.target_return is not None else spec.reward_threshold
    torch.manual_seed(cfg.seed)
    agent = Dreamer(dc, spec, device)
    rng = np.random.default_rng(cfg.seed)
    prog = DreamerProgress()
    store = EpisodeStore(run.episodes)
    store.clean_partial()
    last = None
    if run.has(f"{NS}/last"):
        last = run.load(f"{NS}/last")
        prog = progress_from_dict(DreamerProgress, last["progress"])
        if prog.complete and _finished(prog, dc, target):
            return prog
        prog.complete = False  # resumed with a larger budget or a higher target: go on
        agent.load(last)
        restore_torch_rng(last["rng"])
        restore_np_rng(rng, last["rng"]["numpy"])
    replay = make_replay(dc, spec, store, agent)
    prog = rebuild(replay, store, agent, prog)
    recent: deque[float] = deque(prog.recent, maxlen=dc.stop_window)
    env = make_env(cfg.env)
    bar = progress_bar(total=dc.total_steps, initial=prog.env_steps, desc=NS, disable=not progress)
    t_start, steps_start = time.time(), prog.env_steps
    try:
        while prog.env_steps < dc.total_steps and not prog.complete:
            episode, stats = _episode(env, agent, replay, rng, cfg, prog)
            store.write(prog.episodes, episode)
            replay.commit(prog.episodes, episode.meta.get("boot_value"))
            counts = scored(dc, prog.episodes)
            prog.episodes += 1
            prog.iteration = prog.episodes
            if counts:
                recent.append(float(episode.meta["return"]))
                acted = episode.meta["policy"] != "random"
                _hold(dc, prog, float(episode.meta["return"]), target, acted)
            prog.recent = list(recent)
            prog.real_env_steps = prog.env_steps + prog.eval_steps
            score = judged_score(None, recent, dc.stop_window)
            stop = _stops(dc, score, target, prog)
            # stop_confirm: the held agent that stops is the best, even where an earlier
            # window scored as high
            improved = counts and (score > prog.best_score or (stop and dc.stop_confirm))
            prog.best_score = max(prog.best_score, score)
            prog.complete = prog.env_steps >= dc.total_steps or stop
            point = curve_point(None, recent)
            if counts and point is not None:
                run.log_curve(prog.real_env_steps, point)
            if improved or not run.has(f"{NS}/best"):
                run.save(f"{NS}/best", payload(agent, spec, prog, rng, training=False))
            run.save(f"{NS}/last", payload(agent, spec, prog, rng, training=True))
            _log(
                writer,
                prog,
                stats,
                recent,
                (prog.env_steps - steps_start) / max(time.time() - t_start, 1e-9),
            )
            bar.update(prog.env_steps - bar.n)
            bar.set_postfix(
                ret=f"{np.mean(recent) if recent else math.nan:.1f}", updates=prog.updates
            )
    finally:
        bar.close()
        env.close()
    return prog


def _episode(
    env: gym.Env, agent: Dreamer, replay: Replay, rng: np.random.Generator, cfg: Config,
    prog: DreamerProgress,
) -> tuple[Episode, dict[str, float]]:  # fmt: skip
    """One real episode: act, store each step in the replay, update as the ratio owes."""
    dc = cfg.section(DreamerConfig)
    spec = agent.spec
    per_update = dc.train_ratio / (dc.batch_size * dc.seq_len)
    seed = reset_seed(cfg.seed, Stream.TRAIN, prog.episodes)
    obs, _ = env.reset(seed=seed)
    state = agent.initial(1)
    replay.add(obs, np.zeros(spec.action_dim, np.float32), 0.0, True, False)
    observations, actions, rewards, terminated = [obs], [], [], []
    env_steps, first, limit = 0, True, False
    stats: dict[str, float] = {}
    while True:
        if prog.agent_steps < dc.prefill:
            action = random_action(spec, rng)
        else:
            greedy = by_mode(dc, prog.episodes)
            acts, state = agent.act(obs[None], state, np.array([first]), mode=greedy)
            action = acts[0]
        first = False
        cap_frames(env, dc.total_steps - prog.env_steps)
        obs, r, term, trunc, info = env.step(action_to_env(action, spec))
        feats = agent.action_features(np.asarray(action)[None])[0]
        limit = bool(info.get("time_limit"))  # env.time_feature: the step limit ends it
        replay.add(obs, feats, float(r), False, bool(term))
        observations.append(obs)
        actions.append(action)
        rewards.append(float(r))
        terminated.append(bool(term))
        env_steps += int(info.get("env_steps", 1))
        prog.agent_steps += 1
        prog.env_steps += int(info.get("env_steps", 1))
        if prog.agent_steps >= dc.prefill and replay.size >= dc.seq_len and not prog.holding:
            prog.credit += per_update  # a float sum: the same on resume (it is saved)
            while prog.credit >= 1.0:
                batch = replay.sample(rng, dc.batch_size, dc.seq_len, dc.end_fraction)
                stats = agent.update(batch, prog.updates)
                prog.updates += 1
                prog.credit -= 1.0
        if term or trunc or prog.env_steps >= dc.total_steps:
            break  # the budget cuts the last episode: stored as truncated
    learned = prog.agent_steps > dc.prefill  # the agent filtered (and acted in) this episode
    boot = {}  # a cut episode's bootstrap for its returns to go (dreamer.repval_return)
    if dc.repval_return != "lambda" and learned and not terminated[-1]:
        boot["boot_value"] = agent.last_value(obs, state)
    episode = Episode(
        observations=np.stack(observations),
        actions=np.asarray(
            actions, dtype=np.int64 if spec.action_kind == "discrete" else np.float32
        ),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminated=np.asarray(terminated, dtype=bool),
        meta={
            "env": spec.env_id,
            "seed": seed,
            "return": float(np.sum(rewards)),
            "truncated": bool(not terminated[-1]),
            "time_limit": limit,
            "env_steps": env_steps,
            "policy": "random" if prog.agent_steps <= dc.prefill else NS,
            "acted": "mode" if by_mode(dc, prog.episodes) else "sample",
            "scored": scored(dc, prog.episodes),
            **boot,
        },
    )
    return episode, stats


def scored(dc: DreamerConfig, index: int) -> bool:
    """Whether training episode ``index`` counts towards the score (``dreamer.score_every``)."""
    return index % dc.score_every == dc.score_every - 1


def measures(dc: DreamerConfig, index: int) -> bool:
    """Whether episode ``index`` is a separate scored one, acting as ``evaluate`` does."""
    return dc.score_every > 1 and scored(dc, index)


def by_mode(dc: DreamerConfig, index: int) -> bool:
    """Whether training episode ``index`` acts by the mode."""
    policy = dc.eval_policy if measures(dc, index) else dc.act_policy
    return bool(policy == "mode")


def _finished(prog: DreamerProgress, dc: DreamerConfig, target: float | None) -> bool:
    """Whether the run is done under ``dc`` (its budget or target may have changed since)."""
    score = judged_score(None, prog.recent[-dc.stop_window :], dc.stop_window)
    return prog.env_steps >= dc.total_steps or _stops(dc, score, target, prog)


def _stops(dc: DreamerConfig, score: float, target: float | None, prog: DreamerProgress) -> bool:
    """The score stops the run: it reached the target and ``dreamer.stop_at_target`` is on
    (with ``stop_confirm``: and the last ``stop_window`` scored episodes were the held
    agent's)."""
    confirmed = not dc.stop_confirm or prog.held >= dc.stop_window
    return bool(dc.stop_at_target) and reached(score, target) and confirmed


def _hold(
    dc: DreamerConfig, prog: DreamerProgress, ret: float, target: float | None, acted: bool
) -> None:  # fmt: skip
    """``dreamer.stop_confirm``: a scored episode the agent played (``acted``: not the random
    pre-fill's) at the target holds the agent fixed; the held agent's next scored episodes
    count while they stay at the target, and one under it releases the agent to learn on."""
    if not dc.stop_confirm:
        return
    at_target = acted and reached(ret, target)
    if prog.holding and at_target:
        prog.held += 1
    else:
        prog.holding, prog.held = at_target, 0


def _log(
    writer: Any, prog: DreamerProgress, stats: dict[str, float], recent: deque[float], fps: float
) -> None:
    step = prog.real_env_steps
    if recent:  # score_every k: none before the first scored episode
        writer.add_scalar("rollout/ep_rew_mean", float(np.mean(recent)), step)
    writer.add_scalar("time/fps", fps, step)
    writer.add_scalar("train/updates", prog.updates, step)
    for k, v in stats.items():
        name = {"model_loss": "model_loss", "model_kl": "kl"}.get(k, k)
        writer.add_scalar(f"train/{name}", v, step)
