"""Checkpoints of the actor-critic agents (a2c, wm-ppo): ``agent/last`` (everything to resume)
and ``agent/best`` (the weights at the best rolling training return), weights-only."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from worldmodels.config import Config, EnvConfig, to_dict
from worldmodels.data.rollout import EnvPool, run_batch
from worldmodels.dream import dream_horizon
from worldmodels.envs import EnvSpec
from worldmodels.rl.actor_critic import ActorCritic
from worldmodels.runs import RunDir, check_spec, model_payload
from worldmodels.seeding import Stream, reset_seed
from worldmodels.training.actor_critic_config import ActorCriticConfig
from worldmodels.training.scoring import judged_score, reached
from worldmodels.world_model import WorldModel


def ac_kwargs(cfg: Config, feature_dim: int) -> dict[str, Any]:
    return {
        "in_dim": feature_dim,
        "hidden": list(cfg.section(ActorCriticConfig).hidden_dims),
        "layer_norm": cfg.section(ActorCriticConfig).layer_norm,
    }


def build_ac(kwargs: dict[str, Any], spec: EnvSpec) -> ActorCritic:
    return ActorCritic(kwargs["in_dim"], spec, kwargs["hidden"], kwargs["layer_norm"])


def save_agent(
    run: RunDir,
    name: str,
    cfg: Config,
    spec: EnvSpec,
    ac: ActorCritic,
    progress: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    run.save(
        name,
        {
            "model": model_payload("actor_critic", ac_kwargs(cfg, ac.in_dim), ac),
            "spec": spec.shape_signature(),
            "config": to_dict(cfg),
            "progress": progress,
            **(extra or {}),
        },
    )


def load_agent(run: RunDir, spec: EnvSpec, device: torch.device, name: str) -> ActorCritic:
    """The actor-critic saved as checkpoint ``name`` (e.g. ``a2c/best``)."""
    payload = run.load(name)
    check_spec(payload, spec, str(run.ckpt_path(name)))
    ac = build_ac(payload["model"]["kwargs"], spec)
    ac.load_state_dict(payload["model"]["state_dict"])
    return ac.to(device).eval()


def rng_state() -> dict[str, Any]:
    """Torch's generators: the CPU's, and each GPU's once CUDA is in use (sampling on the
    agent's device draws from that device's generator)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """`rng_state`'s generators back; a GPU state is restored where as many GPUs are seen."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def evaluate_ac(
    env_cfg: EnvConfig,
    spec: EnvSpec,
    world: WorldModel,
    ac: ActorCritic,
    episodes: int,
    seed: int,
) -> tuple[float, int]:
    """Mean return of the deterministic policy over ``episodes`` real episodes (seeds apart
    from training and final evaluation) and the real env steps it took (they are counted)."""
    from worldmodels.agent import ActorCriticPolicy

    pool = EnvPool(env_cfg)
    try:
        result = run_batch(
            pool, spec, ActorCriticPolicy(world, ac), [seed + k for k in range(episodes)]
        )
    finally:
        pool.close()
    return float(result.returns.mean()), result.env_steps


def score_and_stop(
    cfg: Config,
    prog: dict[str, Any],
    recent: list[float],
    eval_score: float | None,
    target: float | None,
) -> tuple[float, bool]:
    """The score an iteration is judged by -- the deterministic real evaluation when there was
    one this iteration, else the mean of the last ``ac.stop_window`` training episodes -- and
    whether it improved on the best so far. Sets ``prog['complete']``."""
    acfg = cfg.section(ActorCriticConfig)
    score = judged_score(eval_score, recent, acfg.stop_window)
    improved = score > prog["best_score"]
    prog["best_score"] = max(score, prog["best_score"])
    prog["complete"] = bool(
        prog["env_steps"] >= acfg.total_steps
        or (acfg.updates > 0 and prog["iteration"] >= acfg.updates)
        or reached(score, target)
    )
    return score, improved


@torch.no_grad()
def dream_score(
    cfg: Config, spec: EnvSpec, world: WorldModel, ac: ActorCritic, episodes: int, seed: int
) -> float:
    """Mean return of the deterministic policy in the dream, from real reset states (a reset
    is not a step: this costs no real env step)."""
    pool = EnvPool(cfg.env)
    try:
        obs = np.stack([env.reset(seed=seed + k)[0] for k, env in enumerate(pool.take(episodes))])
    finally:
        pool.close()
    z = world.encode(obs)

    def policy(features: torch.Tensor, t: int) -> torch.Tensor:
        dist = ac.dist(features)
        return dist.to_env(dist.mode())

    out = world.imagine(
        z,
        world.initial(episodes),
        policy,
        dream_horizon(cfg, spec),
        cfg.memory.temperature,
        torch.Generator().manual_seed(seed),
        cfg.dream.done_mode,
        until_all_done=True,
    )
    return float((out.rewards * out.alive).sum(1).mean())


def periodic_eval(
    cfg: Config,
    spec: EnvSpec,
    world: WorldModel,
    ac: ActorCritic,
    iteration: int,
    prog: dict[str, Any],
    writer: Any,
    target: float | None,
) -> float | None:
    """Every ``ac.eval_every`` updates: the deterministic policy's score in the dream (free);
    if that reaches the target (or there is no dream gate), its real score on
    ``ac.eval_episodes`` episodes, whose steps are added to ``prog['eval_steps']``."""
    acfg = cfg.section(ActorCriticConfig)
    if not acfg.eval_every or iteration % acfg.eval_every:
        return None
    seed = reset_seed(cfg.seed, Stream.SELECT, iteration * 1000)
    if acfg.dream_gate:
        dream = dream_score(cfg, spec, world, ac, acfg.dream_gate_episodes, seed)
        writer.add_scalar("eval/dream_mean_reward", dream, prog["real_env_steps"])
        if target is not None and dream < acfg.dream_gate_fraction * target:
            return None
    score, steps = evaluate_ac(cfg.env, spec, world, ac, acfg.eval_episodes, seed)
    prog["eval_steps"] = prog.get("eval_steps", 0) + steps
    writer.add_scalar("eval/mean_reward", score, prog["real_env_steps"] + steps)
    return score
