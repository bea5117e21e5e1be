"""The stages of a run, in order, and the training methods built from them.

The CLI parses and calls these; these call the trainers. A stage whose artifact is complete is
skipped; an interrupted one continues with ``resume=True``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from worldmodels.agent import ActorCriticPolicy, ControllerPolicy
from worldmodels.config import (
    Config,
    incompatible_keys,
    load_yaml,
    parse_set,
    resolve,
    to_dict,
)
from worldmodels.controllers.linear import PolicyShape
from worldmodels.data.collect import collect
from worldmodels.data.loaders import LatentCache, encode_missing
from worldmodels.data.store import EpisodeStore, is_validation
from worldmodels.dream import StartStates, start_states
from worldmodels.envs import EnvSpec, probe
from worldmodels.errors import UserError
from worldmodels.parallel import FailurePolicy, preflight
from worldmodels.rollout import EnvPool, Policy, run_batch
from worldmodels.runs import RunDir, atomic_write_json, check_spec, file_sha256
from worldmodels.world_model import WorldModel, load_world_model


@dataclass
class Context:
    run: RunDir
    cfg: Config
    spec: EnvSpec
    device: torch.device
    resume: bool = False
    progress: bool = True
    _writer: Any = field(default=None, repr=False)

    @property
    def writer(self):
        if self._writer is None:
            self._writer = self.run.writer()
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto"
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def open_run(
    run_dir: str | Path,
    env_id: str | None = None,
    presets: list[str] | None = None,
    config_file: str | None = None,
    set_items: list[str] | None = None,
    seed: int | None = None,
    device: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Context:
    """Resolve the config and validate everything before the first byte is written."""
    run = RunDir(run_dir)
    file_overrides = load_yaml(Path(config_file)) if config_file else {}
    set_overrides = parse_set(set_items or [])
    if seed is not None:
        set_overrides["seed"] = seed
    if device is not None:
        set_overrides["device"] = device
    if run.has_config():
        stored = run.load_config()
        if env_id and env_id != stored.env.id:
            raise UserError(
                f"run directory {run.root} was written for env {stored.env.id}, not "
                f"{env_id}; use a new --run-dir (or drop --env to continue it)"
            )
        if presets and sorted(presets) != sorted(stored.presets):
            raise UserError(
                f"run directory {run.root} was created with presets "
                f"{stored.presets or 'none'}, not {presets}; use a new --run-dir"
            )
        cfg = resolve(None, [], file_overrides, set_overrides, base=to_dict(stored))
        bad = [k for k in incompatible_keys(stored, cfg) if _trained(run, k)]
        if bad:
            raise UserError(
                f"run directory {run.root} was made with a different "
                f"{', '.join(bad)}; its checkpoints depend on them: use a new "
                f"--run-dir"
            )
        spec = probe(cfg.env)
        resolve_device(cfg.device)
        preflight(cfg.parallel.executor, cfg.parallel.ray_address)
        if cfg != stored:
            run.write_config(cfg, spec)
    else:
        if not env_id and not (
            isinstance(file_overrides.get("env"), dict) and file_overrides["env"].get("id")
        ):
            raise UserError(
                f"--env is required for a new run directory ({run.root} has no "
                f"config.yaml); see `worldmodels envs`"
            )
        cfg = resolve(env_id, presets or [], file_overrides, set_overrides)
        spec = probe(cfg.env)
        resolve_device(cfg.device)
        preflight(cfg.parallel.executor, cfg.parallel.ray_address)
        run.write_config(cfg, spec)
    return Context(run, cfg, spec, resolve_device(cfg.device), resume, progress)


# which checkpoints a config section's keys shape: before they exist, the keys may change
_SECTION_ARTIFACTS = {
    "vision": ("vision/last", "vision/best"),
    "memory": ("memory/last", "memory/best", "world/last"),
    "controller": ("controller/last", "controller/best"),
    "ac": ("agent/last",),
    "imagination": ("agent/last",),
}


def _trained(run: RunDir, key: str) -> bool:
    """Whether a checkpoint that depends on config ``key`` exists (unknown: assume yes)."""
    names = _SECTION_ARTIFACTS.get(key.split(".")[0])
    if names is None:
        return True
    return any(run.has(n) for n in names)


@contextmanager
def timed(ctx: Context, stage: str):
    """Adds the stage's wall time to ``counters.json`` (also when it is interrupted)."""
    t0 = time.time()
    try:
        yield
    finally:
        counters = ctx.run.counters()
        walls = counters.setdefault("wall_seconds", {})
        walls[stage] = walls.get(stage, 0.0) + time.time() - t0
        atomic_write_json(ctx.run.root / "counters.json", counters)


def split(ctx: Context) -> tuple[list[int], list[int]]:
    store = EpisodeStore(ctx.run.episodes)
    indices = store.valid_indices()
    val = [i for i in indices if is_validation(i, ctx.cfg.collect.val_fraction)]
    train = [i for i in indices if not is_validation(i, ctx.cfg.collect.val_fraction)]
    if not train and val:  # tiny stores: never train on nothing
        train, val = val, []
    return train, val


def require_resume(ctx: Context, stage: str) -> None:
    """An interrupted stage continues only with --resume (checked before anything is written)."""
    if ctx.resume or not ctx.run.has(f"{stage}/last"):
        return
    progress = ctx.run.load(f"{stage}/last")["progress"]
    if not progress.get("complete"):
        if "epoch" in progress:
            where = f"epoch {progress['epoch']}"
        elif "real_env_steps" in progress and "generation" not in progress:
            where = f"{progress['real_env_steps']:,} real env steps"
        else:
            where = f"generation {progress.get('generation')}"
        raise UserError(
            f"{ctx.run.root} has an interrupted {stage} stage (at {where}); pass "
            f"--resume to continue it or use a new --run-dir"
        )


def failure_policy(cfg: Config) -> FailurePolicy:
    return FailurePolicy(cfg.parallel.task_timeout, cfg.parallel.max_retries)


def stage_collect(ctx: Context) -> dict[str, Any]:
    store = EpisodeStore(ctx.run.episodes)
    with timed(ctx, "collect"):
        collect(
            store,
            ctx.cfg.env,
            ctx.spec,
            ctx.cfg.collect.episodes,
            ctx.cfg.seed,
            ctx.cfg.collect.policy,
            ctx.cfg.collect.workers,
            ctx.progress,
            ctx.cfg.parallel.executor,
            ctx.cfg.parallel.ray_address,
            failure_policy(ctx.cfg),
        )
    summary = store.summary()
    if summary["episodes"]:  # the random (or given) policy's point of the learning curve
        ctx.run.log_curve(summary["env_steps"], summary["mean_return"])
    if summary["episodes"] < ctx.cfg.collect.episodes:
        raise UserError(
            f"only {summary['episodes']} of {ctx.cfg.collect.episodes} episodes in "
            f"{ctx.run.episodes} could be read; re-run collect"
        )
    return summary


def stage_vision(ctx: Context) -> dict[str, float]:
    from worldmodels.training.vision import train_vision

    require_resume(ctx, "vision")
    train, val = split(ctx)
    with timed(ctx, "vision"):
        return train_vision(
            ctx.run, ctx.cfg, ctx.spec, train, val, ctx.device, ctx.writer, ctx.progress
        )


def stage_memory(ctx: Context) -> dict[str, float]:
    from worldmodels.training.joint import train_joint
    from worldmodels.training.memory import train_memory

    require_resume(ctx, "memory")
    require_resume(ctx, "world")
    train, val = split(ctx)
    with timed(ctx, "memory"):
        trainer = train_joint if ctx.cfg.memory.joint else train_memory
        return trainer(ctx.run, ctx.cfg, ctx.spec, train, val, ctx.device, ctx.writer, ctx.progress)


def world_model(ctx: Context) -> WorldModel:
    world = load_world_model(ctx.run, ctx.spec, ctx.device)
    mem = ctx.run.load("memory/best")
    if mem.get("vision_sha256") != file_sha256(ctx.run.ckpt_path("vision/best")):
        raise UserError(
            f"M in {ctx.run.checkpoints} was trained on another V; retrain it "
            f"with `worldmodels train-memory --run-dir {ctx.run.root}`"
        )
    return world


def stage_controller(ctx: Context) -> dict[str, Any]:
    from worldmodels.training.cmaes import train_cmaes

    require_resume(ctx, "controller")
    world = world_model(ctx)
    with timed(ctx, "controller"):
        return train_cmaes(ctx.run, ctx.cfg, ctx.spec, world, ctx.writer, ctx.progress)


def dream_horizon(ctx: Context) -> int:
    """The dream's episode cap: dream.horizon, and never longer than the real env's limit."""
    limits = [ctx.cfg.dream.horizon, ctx.cfg.env.max_episode_steps, ctx.spec.max_episode_steps]
    return min(x for x in limits if x)


def dream_parts(ctx: Context) -> tuple[WorldModel, StartStates]:
    """The trained world model and the real states dreams start from (training split)."""
    if not ctx.run.has("memory/best"):
        raise UserError(
            f"the dream needs a trained M and {ctx.run.checkpoints} has none; run "
            f"`worldmodels train-memory --run-dir {ctx.run.root}` (or `worldmodels train`) first"
        )
    world = world_model(ctx)
    cache = LatentCache(ctx.run.latents, file_sha256(ctx.run.ckpt_path("vision/best")))
    train, _ = split(ctx)
    encode_missing(
        cache,
        EpisodeStore(ctx.run.episodes),
        train,
        world.vision,
        ctx.device,
        progress=ctx.progress,
    )
    train = [i for i in train if cache.has(i)]
    if not train:
        raise UserError(
            f"no encoded episodes in {ctx.run.root} to start dreams from; re-run collect"
        )
    starts = start_states(world, cache, train, ctx.cfg.dream.start_states, ctx.cfg.seed + 404)
    return world, starts


def stage_dream_controller(ctx: Context) -> dict[str, Any]:
    """CMA-ES with fitness measured only inside the dream: no real env step."""
    from worldmodels.training.cmaes import train_cmaes
    from worldmodels.training.dream import DreamEvaluator

    require_resume(ctx, "controller")
    world, starts = dream_parts(ctx)
    dc = ctx.cfg.dream

    def make(shape: PolicyShape) -> DreamEvaluator:
        return DreamEvaluator(
            world,
            starts,
            shape,
            dream_horizon(ctx),
            ctx.cfg.memory.temperature,
            dc.start == "initial",
            dc.done_mode,
        )

    with timed(ctx, "controller"):
        return train_cmaes(
            ctx.run,
            ctx.cfg,
            ctx.spec,
            world,
            ctx.writer,
            ctx.progress,
            make,
            dc.rollouts,
            dc.eval_episodes,
        )


def controller_params(ctx: Context) -> tuple[PolicyShape, np.ndarray]:
    payload = ctx.run.load("controller/best")
    check_spec(payload, ctx.spec, str(ctx.run.ckpt_path("controller/best")))
    kw = payload["model"]["kwargs"]
    shape = PolicyShape(kw["in_dim"], kw["out_dim"], tuple(kw["hidden"]))
    return shape, payload["model"]["state_dict"]["params"].numpy()


def load_agent_policy(run_dir: str, spec: EnvSpec) -> ControllerPolicy:
    """A trained agent (V + M + C) from another run directory, e.g. to collect with it."""
    run = RunDir(run_dir)
    if not run.has_config():
        raise UserError(
            f"collect.policy={run_dir} is not a run directory (no config.yaml); "
            f"use 'random' or a trained run's directory"
        )
    ctx = Context(run, run.load_config(), spec, torch.device("cpu"))
    shape, params = controller_params(ctx)
    return ControllerPolicy(world_model(ctx), shape, params)


def real_env_steps(ctx: Context) -> int:
    if ctx.cfg.method in (*AC_METHODS, "ppo") and ctx.run.has("agent/last"):
        return int(ctx.run.load("agent/last")["progress"]["real_env_steps"])
    steps = EpisodeStore(ctx.run.episodes).summary()["env_steps"]
    if ctx.run.has("controller/last"):
        steps += int(ctx.run.load("controller/last")["progress"].get("env_steps", 0))
    return int(steps)


def evaluate(
    ctx: Context, episodes: int | None = None, video: str | None = None, planner: str | None = None
) -> dict[str, Any]:
    """Mean and std of the return over N real episodes (seeds apart from training); eval.json.
    ``planner``: act by planning with M (enumerate / cem / mppi / auto) on any run."""
    n = episodes or ctx.cfg.evaluate.episodes
    planner = planner or ctx.cfg.evaluate.planner
    make_policy = agent_policies(ctx, planner)
    seeds = [ctx.cfg.seed + ctx.cfg.evaluate.seed_offset + k for k in range(n)]
    pool = EnvPool(ctx.cfg.env)
    returns: list[float] = []
    bar = tqdm(total=n, desc="evaluate", unit="ep", disable=not ctx.progress)
    try:
        for b in range(0, n, ctx.cfg.evaluate.batch_envs):
            chunk = seeds[b : b + ctx.cfg.evaluate.batch_envs]
            policy = make_policy(len(chunk))
            returns.extend(run_batch(pool, ctx.spec, policy, chunk).returns.tolist())
            bar.update(len(chunk))
    finally:
        bar.close()
        pool.close()
    walls: dict[str, float] = ctx.run.counters().get("wall_seconds", {})
    result = {
        "env": ctx.spec.env_id,
        "method": ctx.cfg.method,
        **({"planner": planner} if planner else {}),
        "episodes": n,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "real_env_steps": real_env_steps(ctx),
        "wall_seconds": round(float(sum(walls.values())), 2),
    }
    atomic_write_json(ctx.run.eval_path, result)
    if video:
        from worldmodels.evaluation.video import record_episode

        record_episode(ctx.cfg.env, ctx.spec, make_policy(1), seeds[0], Path(video))
    return result


def diagnose(ctx: Context, horizon: int = 15, max_starts: int = 2000) -> dict[str, Any]:
    """Open-loop k-step prediction errors on held-out episodes, with naive baselines;
    writes diagnostics.json, plots/diagnostics_*.png and, for pixels, videos/diagnose.gif."""
    from worldmodels.evaluation.diagnostics import gather_starts, open_loop
    from worldmodels.evaluation.plots import error_vs_k, scatter

    if horizon < 1:
        raise UserError(f"--horizon must be >= 1, got {horizon}")
    if not ctx.run.has("memory/best"):
        raise UserError(
            f"{ctx.run.root} has no trained M to diagnose; run `worldmodels train-memory "
            f"--run-dir {ctx.run.root}` (or `worldmodels train`) first"
        )
    _, val = split(ctx)
    if not val:
        raise UserError(
            f"the held-out split of {ctx.run.root} is empty (collect.val_fraction="
            f"{ctx.cfg.collect.val_fraction}, {len(split(ctx)[0])} episodes); collect more "
            f"episodes or raise collect.val_fraction"
        )
    world = world_model(ctx)
    store = EpisodeStore(ctx.run.episodes)
    longest = max(store.read_meta(i)["length"] for i in val)
    if horizon > longest - 1:
        raise UserError(
            f"--horizon {horizon} is longer than the held-out episodes allow (the longest of "
            f"{len(val)} has {longest} steps: at most {longest - 1}); use a smaller --horizon"
        )
    cache = LatentCache(ctx.run.latents, file_sha256(ctx.run.ckpt_path("vision/best")))
    encode_missing(cache, store, val, world.vision, ctx.device, progress=ctx.progress)
    starts = gather_starts(world, store, cache, val, horizon, max_starts, ctx.cfg.seed)
    result = open_loop(world, starts)
    points = result.pop("_scatter")
    result |= {"env": ctx.spec.env_id, "held_out_episodes": len(val)}
    atomic_write_json(ctx.run.root / "diagnostics.json", result)
    title = f"{ctx.spec.env_id}: {len(val)} held-out episodes, {result['starts']} start points"
    error_vs_k(result, ctx.run.plots / "diagnostics_error_vs_k.png", title)
    scatter(points, ctx.run.plots / "diagnostics_scatter.png", title)
    if ctx.spec.obs_kind == "pixels":
        from worldmodels.evaluation.diagnostics import prediction_video

        ctx.run.videos.mkdir(parents=True, exist_ok=True)
        prediction_video(world, starts, ctx.run.videos / "diagnose.gif")
    return result


def format_diagnostics(result: dict[str, Any]) -> str:
    lines = [
        f"{result['env']}: open-loop prediction from {result['starts']} start points of "
        f"{result['held_out_episodes']} held-out episodes (reconstruction MSE "
        f"{result['reconstruction_mse']:.4g})",
        "  k   obs MSE    / repeat-last  / const-velocity   latent MSE   reward MAE  done acc",
    ]
    for k in range(result["horizon"]):
        o = result["obs_mse"]
        r = result["obs_mse_ratio"]
        lines.append(
            f"{k + 1:3d}   {o['model'][k]:<10.4g} {r['repeat_last'][k]:<13.3g} "
            f"{r['constant_velocity'][k]:<16.3g} {result['latent_mse']['model'][k]:<12.4g} "
            f"{result['reward_mae'][k]:<11.4g} {result['done_accuracy'][k]:.3f}"
        )
    return "\n".join(lines)


AC_METHODS = ("a2c", "wm-ppo")


def planner_policies(ctx: Context, world: WorldModel, kind: str | None) -> Callable[[int], Policy]:
    """``n -> policy`` planning with M (``--method mpc`` or ``evaluate --planner``); on an
    actor-critic run the actor-critic is the base policy and its critic the value at H."""
    import dataclasses

    from worldmodels.controllers.planners import PlannerPolicy, build_planner
    from worldmodels.training.mpc import planner_config

    settings = planner_config(ctx.cfg)
    if kind:
        settings = dataclasses.replace(settings, kind=kind)
    base = None
    if ctx.cfg.method in AC_METHODS and ctx.run.has("agent/best"):
        from worldmodels.training.agent_io import load_agent

        base = load_agent(ctx.run, ctx.spec, ctx.device)
    reward_trained = ctx.cfg.memory.reward_weight > 0
    value = None
    if ctx.cfg.method == "mpc" and ctx.run.has("mpc_value/best"):
        from worldmodels.training.mpc import load_value

        value = load_value(ctx.run, world)
    build_planner(world, settings, base, reward_trained, value)  # bad input fails first
    return lambda n: PlannerPolicy(
        world, build_planner(world, settings, base, reward_trained, value)
    )


def agent_policies(ctx: Context, planner: str | None = None) -> Callable[[int], Policy]:
    """``n -> policy`` acting in n real envs: V + M + C (CMA-ES methods) or V + M + the
    actor-critic (a2c, wm-ppo; A2C's own V and M weights when it trained them end to end);
    the PPO baseline's policy on the raw observations."""
    if ctx.cfg.method == "ppo" and not planner:
        from worldmodels.training.ppo_baseline import load_ppo_policy

        policy = load_ppo_policy(ctx.run, ctx.cfg, ctx.spec, ctx.device)
        return lambda n: policy
    world = world_model(ctx)
    if ctx.cfg.method == "mpc" or planner:
        return planner_policies(ctx, world, planner)
    if ctx.cfg.method in AC_METHODS:
        from worldmodels.training.agent_io import load_agent

        if not ctx.run.has("agent/best"):
            raise UserError(
                f"{ctx.run.root} has no trained actor-critic (checkpoints/agent/best.pt); run "
                f"`worldmodels train --method {ctx.cfg.method} --run-dir {ctx.run.root}` first"
            )
        ac = load_agent(ctx.run, ctx.spec, ctx.device)
        payload = ctx.run.load("agent/best")
        if "vision_state" in payload:
            world.vision.load_state_dict(payload["vision_state"])
            world.memory.load_state_dict(payload["memory_state"])
        return lambda n: ActorCriticPolicy(world, ac)
    shape, params = controller_params(ctx)
    return lambda n: ControllerPolicy(world, shape, params, repeat=n)


def format_eval(result: dict[str, Any]) -> str:
    return (
        f"{result['env']} [{result['method']}]: {result['mean_return']:.1f} ± "
        f"{result['std_return']:.1f} over {result['episodes']} episodes "
        f"(real env steps {result['real_env_steps']:,}, "
        f"training wall time {result['wall_seconds']:.0f}s)"
    )


STAGES: dict[str, Callable[[Context], Any]] = {
    "collect": stage_collect,
    "vision": stage_vision,
    "memory": stage_memory,
    "controller": stage_controller,
}


def train_classic(ctx: Context, skip: set[str]) -> None:
    """Random rollouts -> V -> M -> C by CMA-ES in the real env (Ha & Schmidhuber)."""
    for name, fn in STAGES.items():
        if name in skip:
            continue
        fn(ctx)


def stage_collect_steps(ctx: Context, steps: int) -> dict[str, Any]:
    """Random episodes until the store holds at least ``steps`` real env steps."""
    store = EpisodeStore(ctx.run.episodes)
    with timed(ctx, "collect"):
        while True:
            s = store.summary()
            if s["env_steps"] >= steps:
                return s
            if s["episodes"] < 10:  # estimate the episode length before collecting in bulk
                need = 10 - s["episodes"]
            else:
                mean_len = s["env_steps"] / s["episodes"]
                need = max(1, math.ceil((steps - s["env_steps"]) / max(mean_len, 1.0)))
            collect(
                store,
                ctx.cfg.env,
                ctx.spec,
                s["episodes"] + need,
                ctx.cfg.seed,
                "random",
                ctx.cfg.collect.workers,
                ctx.progress,
                ctx.cfg.parallel.executor,
                ctx.cfg.parallel.ray_address,
                failure_policy(ctx.cfg),
            )


def stage_wm_ppo(ctx: Context) -> dict[str, Any]:
    from worldmodels.training.wm_ppo import train_wm_ppo

    require_agent_resume(ctx)
    world = world_model(ctx)
    with timed(ctx, "agent"):
        return train_wm_ppo(ctx.run, ctx.cfg, ctx.spec, world, ctx.writer, ctx.progress)


def require_agent_resume(ctx: Context) -> None:
    if ctx.resume or not ctx.run.has("agent/last"):
        return
    prog = ctx.run.load("agent/last")["progress"]
    if not prog.get("complete"):
        raise UserError(
            f"{ctx.run.root} has an interrupted agent stage (at iteration {prog['iteration']}, "
            f"{prog['real_env_steps']:,} real env steps); pass --resume to continue it or use "
            f"a new --run-dir"
        )


def train_wm_ppo(ctx: Context, skip: set[str]) -> None:
    """Seed 002: random steps -> pre-train V and M -> PPO on real + imagined experience,
    M retrained on the growing real data."""
    stages: dict[str, Callable[[Context], Any]] = {
        "collect": lambda c: stage_collect_steps(c, c.cfg.imagination.random_steps),
        "vision": stage_vision,
        "memory": stage_memory,
        "controller": stage_wm_ppo,
    }
    for name, fn in stages.items():
        if name not in skip:
            fn(ctx)


def init_untrained_world(ctx: Context) -> None:
    """A2C without pre-training: V and M start from their random initialisation (written as
    their checkpoints so the run's layout is the same; A2C then trains them end to end)."""
    from worldmodels.models.memory import build_memory
    from worldmodels.models.vision import build_vision
    from worldmodels.runs import model_payload
    from worldmodels.training.memory import memory_kwargs
    from worldmodels.training.vision import vision_kind, vision_kwargs

    header = {"spec": ctx.spec.shape_signature(), "config": to_dict(ctx.cfg)}
    untrained = {"epoch": 0, "complete": True, "untrained": True}
    torch.manual_seed(ctx.cfg.seed + 100)
    if not ctx.run.has("vision/best"):
        kind, kw = vision_kind(ctx.cfg, ctx.spec), vision_kwargs(ctx.cfg, ctx.spec)
        payload = {"model": model_payload(kind, kw, build_vision(kind, kw)), **header}
        ctx.run.save("vision/best", {**payload, "progress": untrained})
    if not ctx.run.has("memory/best"):
        torch.manual_seed(ctx.cfg.seed + 200)
        kw = memory_kwargs(ctx.cfg, ctx.spec)
        model = build_memory(ctx.cfg.memory.kind, kw)
        ctx.run.save(
            "memory/best",
            {
                "model": model_payload(ctx.cfg.memory.kind, kw, model),
                **header,
                "vision_sha256": file_sha256(ctx.run.ckpt_path("vision/best")),
                "progress": untrained,
            },
        )


def stage_a2c(ctx: Context) -> dict[str, Any]:
    from worldmodels.training.a2c import train_a2c

    require_agent_resume(ctx)
    init_untrained_world(ctx)
    world = world_model(ctx)
    with timed(ctx, "agent"):
        return train_a2c(ctx.run, ctx.cfg, ctx.spec, world, ctx.writer, ctx.progress)


def train_a2c(ctx: Context, skip: set[str]) -> None:
    """Seed 000: A2C with GAE on [z, h], V and M trained end to end with it; optionally
    V (``ac.pretrain_vision``) and M (``ac.pretrain_memory``) pre-trained on random
    episodes first."""
    ac = ctx.cfg.ac
    stages: dict[str, Callable[[Context], Any]] = {}
    if ac.pretrain_vision or ac.pretrain_memory:
        stages |= {"collect": stage_collect, "vision": stage_vision}
    if ac.pretrain_memory:
        stages["memory"] = stage_memory
    stages["controller"] = stage_a2c
    for name, fn in stages.items():
        if name not in skip:
            fn(ctx)


def train_dream(ctx: Context, skip: set[str]) -> None:
    """Random rollouts -> V -> M -> C by CMA-ES inside the dream only (the paper's VizDoom
    experiment); the real env is used for collection and the final evaluation. With
    ``dream.iterations > 1``, the paper's iterative procedure: the controller collects real
    episodes, M is retrained on all of them, a new controller is trained in the new dream.

    Crash-safe: the number of finished iterations is in ``dream_iterations.json``, written
    before the finished controller is archived as ``checkpoints/controller_iter<k>``."""
    for name in ("collect", "vision", "memory"):
        if name not in skip:
            STAGES[name](ctx)
    if "controller" in skip:
        return
    dc = ctx.cfg.dream
    state_path = ctx.run.root / "dream_iterations.json"
    done = json.loads(state_path.read_text())["completed"] if state_path.exists() else 0
    while True:
        _archive_controller(ctx, done)  # finish an archive a crash interrupted
        stage_dream_controller(ctx)
        if done + 1 >= dc.iterations:
            return
        done += 1
        _dream_iteration(ctx, done)
        atomic_write_json(state_path, {"completed": done})
        _archive_controller(ctx, done)


def _archive_controller(ctx: Context, k: int) -> None:
    src, dst = ctx.run.checkpoints / "controller", ctx.run.checkpoints / f"controller_iter{k}"
    if k and src.exists() and not dst.exists():
        src.rename(dst)


def _dream_iteration(ctx: Context, k: int) -> None:
    """Collect real episodes with the current controller, then retrain M on all data."""
    from worldmodels.training.memory import finetune_memory

    store = EpisodeStore(ctx.run.episodes)
    target = ctx.cfg.collect.episodes + k * ctx.cfg.dream.collect_episodes
    with timed(ctx, "collect"):
        collect(
            store,
            ctx.cfg.env,
            ctx.spec,
            target,
            ctx.cfg.seed,
            str(ctx.run.root),
            ctx.cfg.collect.workers,
            ctx.progress,
            ctx.cfg.parallel.executor,
            ctx.cfg.parallel.ray_address,
            failure_policy(ctx.cfg),
        )
    train_idx, _ = split(ctx)
    with timed(ctx, "memory"):
        finetune_memory(
            ctx.run,
            ctx.cfg,
            ctx.spec,
            world_model(ctx),
            train_idx,
            ctx.cfg.dream.retrain_epochs,
            ctx.cfg.seed + 900 + k,
            ctx.progress,
        )


def train_mpc(ctx: Context, skip: set[str]) -> None:
    """Random episodes -> V -> M -> plan in the real env, M retrained as data grows
    (``training/mpc.py``)."""
    from worldmodels.training.mpc import train_mpc_loop

    if "collect" not in skip:
        store = EpisodeStore(ctx.run.episodes)
        if not store.valid_indices():
            with timed(ctx, "collect"):
                collect(
                    store,
                    ctx.cfg.env,
                    ctx.spec,
                    ctx.cfg.mpc.random_episodes,
                    ctx.cfg.seed,
                    "random",
                    1,
                    ctx.progress,
                    "local",
                    None,
                    failure_policy(ctx.cfg),
                )
    for name in ("vision", "memory"):
        if name not in skip:
            STAGES[name](ctx)
    if "controller" not in skip:
        write_summary(ctx, "mpc_summary", train_mpc_loop(ctx))


def train_ppo(ctx: Context, skip: set[str]) -> None:
    """The model-free baseline: Stable-Baselines3 PPO on the real env
    (``training/ppo_baseline.py``)."""
    from worldmodels.training.ppo_baseline import train_ppo_baseline

    if "controller" in skip:
        return
    require_resume(ctx, "agent")
    with timed(ctx, "ppo"):
        train_ppo_baseline(ctx.run, ctx.cfg, ctx.spec, ctx.device, ctx.progress)


METHODS: dict[str, Callable[[Context, set[str]], None]] = {
    "classic": train_classic,
    "mpc": train_mpc,
    "dream": train_dream,
    "wm-ppo": train_wm_ppo,
    "a2c": train_a2c,
    "ppo": train_ppo,
}


def train(ctx: Context, method: str, skip: set[str]) -> None:
    if method not in METHODS:
        raise UserError(f"unknown method '{method}'; available: {', '.join(METHODS)}")
    METHODS[method](ctx, skip)


def write_summary(ctx: Context, name: str, data: dict[str, Any]) -> None:
    path = ctx.run.root / f"{name}.json"
    atomic_write_json(path, json.loads(json.dumps(data, default=float)))
