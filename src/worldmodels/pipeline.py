"""Opening a run and running what the CLI asks of it: a method's training (from the method
registry), evaluation and diagnosis. Resolves and validates everything before the first byte
is written; knows no method by name."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.config import (
    Config,
    flat_items,
    incompatible_keys,
    load_yaml,
    parse_set,
    resolve,
    to_dict,
)
from worldmodels.config.sizing import sized_defaults
from worldmodels.data.loaders import LatentCache, encode_missing
from worldmodels.data.rollout import EnvPool, run_batch
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import EnvSpec, probe
from worldmodels.errors import UserError
from worldmodels.methods import Context, get
from worldmodels.methods.base import CONFIG_ADAPTERS
from worldmodels.methods.mpc import planner_policies
from worldmodels.methods.stages import (
    STAGES,
    stage_collect,
    stage_controller,
    stage_memory,
    stage_vision,
    world_model,
)
from worldmodels.parallel import preflight
from worldmodels.progress import progress_bar
from worldmodels.registry import REGISTRY
from worldmodels.runs import (
    DiskError,
    RunDir,
    RunLock,
    atomic_write_json,
    remove_temp_files,
    versions,
)
from worldmodels.seeding import Stream, reset_seeds

__all__ = [
    "STAGES",
    "Context",
    "diagnose",
    "evaluate",
    "open_run",
    "stage_collect",
    "stage_controller",
    "stage_memory",
    "stage_vision",
    "train",
]


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
    reads: bool = False,
    writes: bool = True,
    own_threads: bool = True,
) -> Context:
    """Resolve the config and validate everything before the first byte is written.
    ``reads``: a command that reads a finished run (evaluate, diagnose): the run must exist,
    its config.yaml is never rewritten, and an unwritable run directory is a warning (the
    result is printed, then saving it fails in one line) rather than a refusal. ``writes=False``
    (``diagnose --no-write``): nothing is written, so no lock is taken. ``own_threads``: this
    process is the run's own (the command line), so its math threads are set to the run's
    recorded count; a library caller (``worldmodels.open_run``, ``gym.make``) keeps its own."""
    run = RunDir(run_dir)
    if reads and not run.has_config():
        raise UserError(
            f"{run.root} is not a run directory (no config.yaml): check the path; a run is "
            f"made by `worldmodels train --env ENV --run-dir {run.root}`"
        )
    file_overrides = load_yaml(Path(config_file)) if config_file else {}
    for adapt in CONFIG_ADAPTERS:
        file_overrides = adapt(file_overrides, str(config_file))
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
        method = set_overrides.get("method") or file_overrides.get("method")
        new_method = bool(method) and method != stored.method  # its presets size the env
        kind = probe(stored.env).obs_kind if new_method else None
        cfg = resolve(None, [], file_overrides, set_overrides, base=to_dict(stored), obs_kind=kind)
        bad = [k for k in incompatible_keys(stored, cfg) if _trained(run, k)]
        if bad:
            switched = (
                f" (--method {cfg.method} brings its preset for {cfg.env.id})"
                if cfg.method != stored.method
                else ""
            )
            raise UserError(
                f"run directory {run.root} was made with a different "
                f"{', '.join(bad)}{switched}; its checkpoints depend on them: use a new "
                f"--run-dir"
            )
        spec = probe(cfg.env)
        _check_method(cfg, spec)
        resolve_device(cfg.device)
        preflight(cfg.parallel.executor, cfg.parallel.ray_address)
        lock = _writer_lock(run, optional=reads) if writes else None
        if cfg != stored and not reads:
            run.write_config(cfg, spec)
    else:
        if not env_id and not (
            isinstance(file_overrides.get("env"), dict) and file_overrides["env"].get("id")
        ):
            raise UserError(
                f"--env is required for a new run directory ({run.root} has no "
                f"config.yaml); see `worldmodels envs`"
            )
        cfg, spec = resolve_new(env_id, presets or [], file_overrides, set_overrides)
        cfg.threads = cfg.threads or default_threads()  # written down: it moves results
        _check_method(cfg, spec)
        resolve_device(cfg.device)
        preflight(cfg.parallel.executor, cfg.parallel.ray_address)
        lock = _writer_lock(run)
        run.write_config(cfg, spec)
    if cfg.threads and own_threads:
        torch.set_num_threads(cfg.threads)
    return Context(run, cfg, spec, resolve_device(cfg.device), resume, progress, lock=lock)


def resolve_new(
    env_id: str | None,
    presets: list[str],
    file_overrides: dict[str, Any],
    set_overrides: dict[str, Any],
) -> tuple[Config, EnvSpec]:
    """The config a new run gets, and its env's spec: resolved once to find the env, whose
    spaces then size the defaults of an env without a preset."""
    first = resolve(env_id, presets, file_overrides, set_overrides)
    spec = probe(first.env)
    sized = sized_defaults(spec.obs_kind, int(np.prod(spec.obs_shape)), spec.action_dim)
    kind = spec.obs_kind
    cfg = resolve(env_id, presets, file_overrides, set_overrides, sized=sized, obs_kind=kind)
    if cfg.env != first.env:  # the observation kind's entry set the env's (its image size)
        spec = probe(cfg.env)
    return cfg, spec


def default_threads() -> int:
    """A new run's math threads when its config says 0: ``OMP_NUM_THREADS`` where the user set
    it, else one. Models of these sizes gain little from a second thread alone (CartPole's
    dreamer: 7.5 against 5.4 gradient steps/s) and lose 11x beside one other busy process
    (0.48 against 5.4), as OpenMP's threads spin at barriers for a core they do not have
    (``benchmarks/dreamer_speed.py --shared``)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _writer_lock(run: RunDir, optional: bool = False) -> RunLock | None:
    """Take the run directory's writer lock (after every check, before the first write) and
    remove the temp files a killed writer left. ``optional``: an unwritable directory is a
    warning and no lock (nothing can be written there anyway)."""
    lock = RunLock(run.root)
    try:
        lock.acquire(" ".join(["worldmodels", *sys.argv[1:]]))
    except DiskError as exc:
        if not optional:
            raise
        logging.getLogger(__name__).warning("%s; results are printed but cannot be saved", exc)
        return None
    remove_temp_files(run.root)
    return lock


def _check_method(cfg: Config, spec: EnvSpec) -> None:
    """The method exists, and its own checks of the config against the env pass (a method's
    optional ``check(cfg, spec)``)."""
    check = getattr(get(cfg.method), "check", None)
    if check is not None:
        check(cfg, spec)


def _section_artifacts(section: str) -> tuple[str, ...] | None:
    """The checkpoints a config section's keys shape (None: unknown, assume trained)."""
    if section == "vision":
        return ("vision/last", "vision/best")
    if section == "memory":
        return ("memory/last", "memory/best", "world/last")
    owned = [a for m in REGISTRY.values() if section in m.sections for a in m.artifacts]
    return tuple(owned) or None


def _trained(run: RunDir, key: str) -> bool:
    """Whether a checkpoint that depends on config ``key`` exists (unknown: assume yes)."""
    names = _section_artifacts(key.split(".")[0])
    if names is None:
        return True
    return any(run.has(n) for n in names)


def train(ctx: Context, method: str, skip: set[str]) -> None:
    check_skips(ctx, method, skip)
    get(method).train(ctx, skip)


def check_skips(ctx: Context, method: str, skip: set[str]) -> None:
    """A skipped stage whose output a later stage that does run reads must have written it
    already; checked before any work (``--skip-vae --skip-mdnrnn`` on a new run)."""
    order = [*get(method).world_stages, "controller"]
    needs = {"collect": "collected episodes", "vision": "a trained V", "memory": "a trained M"}
    for k, stage in enumerate(order[:-1]):
        if stage not in skip or all(later in skip for later in order[k + 1 :]):
            continue
        if stage == "collect":
            path, command = ctx.run.episodes, "collect"
            missing = not EpisodeStore(path).valid_indices()
        else:
            path, command = ctx.run.ckpt_path(f"{stage}/best"), f"train-{stage}"
            missing = not path.exists()
        if missing:
            raise UserError(
                f"--skip-{stage} needs {needs[stage]} ({path}), which {ctx.run.root} does not "
                f"have yet: drop --skip-{stage} (or run `worldmodels {command} --run-dir "
                f"{ctx.run.root}` first)"
            )


def agent_policies(ctx: Context, planner: str | None = None):
    """``n -> policy`` acting in n real envs: the method's agent, or (``planner``) planning
    with the run's M."""
    if planner:
        return planner_policies(ctx, world_model(ctx), planner)
    return get(ctx.cfg.method).policy(ctx)


def evaluate(
    ctx: Context,
    episodes: int | None = None,
    video: str | None = None,
    planner: str | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Mean and std of the return over N real episodes (seeds apart from training); eval.json.
    ``planner``: act by planning with M (enumerate / cem / mppi / auto) on any run.
    ``report(result)`` is called before anything is written, so a result that cannot be
    saved (full or read-only disk) is still shown."""
    n = episodes or ctx.cfg.evaluate.episodes
    planner = planner or ctx.cfg.evaluate.planner
    make_policy = agent_policies(ctx, planner)
    seeds = reset_seeds(ctx.cfg.seed, Stream.EVALUATE, ctx.cfg.evaluate.seed_offset, n)
    pool = EnvPool(ctx.cfg.env)
    returns: list[float] = []
    bar = progress_bar(total=n, desc="evaluate", unit="ep", disable=not ctx.progress)
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
    stored, now = flat_items(to_dict(ctx.run.load_config())), flat_items(to_dict(ctx.cfg))
    overrides = {k: v for k, v in now.items() if stored.get(k) != v}
    result = {
        "env": ctx.spec.env_id,
        "method": ctx.cfg.method,
        **({"planner": planner} if planner else {}),
        **({"overrides": overrides} if overrides else {}),  # --set not in config.yaml
        "episodes": n,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "returns": [float(r) for r in returns],  # per episode, in the order of their seeds
        "seeds": seeds,  # each episode's reset seed (worldmodels.seeding: its evaluation stream)
        "real_env_steps": get(ctx.cfg.method).real_env_steps(ctx),
        "threads": torch.get_num_threads(),
        "wall_seconds": round(float(sum(walls.values())), 2),
        # the same seed, config and threads give the same score only with the same libraries:
        # a benchmark record keeps them (a CartPole table of 2026-12-03 could not be remade)
        "versions": versions(),
    }
    if report is not None:
        report(result)
    atomic_write_json(ctx.run.eval_path, result)
    if video:
        from worldmodels.evaluation.video import record_episode

        record_episode(ctx.cfg.env, ctx.spec, make_policy(1), seeds[0], Path(video))
    return result


def diagnose(
    ctx: Context,
    horizon: int = 15,
    max_starts: int = 2000,
    min_start: int = 1,
    write: bool = True,
    report: Callable[[dict[str, Any]], None] | None = None,
    samples: int = 16,
) -> dict[str, Any]:
    """Open-loop k-step prediction errors on held-out episodes from start points t >=
    ``min_start``, with naive baselines; writes diagnostics.json, plots/diagnostics_*.png
    and, for pixels, videos/diagnose.gif (``write=False``: nothing, the latents go to a
    temporary folder). ``report(result)`` is called before anything is written. An M whose
    tau = 0 step is not its mean predicts by the mean of ``samples`` sampled rollouts."""
    from worldmodels.evaluation.diagnostics import gather_starts, open_loop
    from worldmodels.evaluation.plots import error_vs_k, scatter

    if horizon < 1:
        raise UserError(f"--horizon must be >= 1, got {horizon}")
    if samples < 0:
        raise UserError(f"--samples must be >= 0 (0: the tau = 0 path), got {samples}")
    if min_start < 1:
        raise UserError(
            f"--min-start must be >= 1 (a start needs the step before it), got {min_start}"
        )
    method = get(ctx.cfg.method)
    world, keyed_by = method.world(ctx)
    with tempfile.TemporaryDirectory(prefix="worldmodels-latents-") as scratch:
        store, val, cacheable = method.held_out(ctx, Path(scratch) / "episodes")
        longest = max(store.read_meta(i)["length"] for i in val)
        if horizon > longest - 1:
            raise UserError(
                f"--horizon {horizon} is longer than the held-out episodes allow (the longest "
                f"of {len(val)} has {longest} steps: at most {longest - 1}); use a smaller "
                f"--horizon"
            )
        if min_start > longest - 1:
            raise UserError(
                f"--min-start {min_start} is past every held-out episode (the longest of "
                f"{len(val)} has {longest} steps); use a smaller --min-start"
            )
        cache = LatentCache(
            ctx.run.latents if write and cacheable else Path(scratch),
            ctx.run.digest(keyed_by),
        )
        encode_missing(cache, store, val, world.vision, ctx.device, progress=ctx.progress)
        starts = gather_starts(
            world, store, cache, val, horizon, max_starts, ctx.cfg.seed, min_start
        )
    result = open_loop(world, starts, samples, ctx.cfg.seed)
    points = result.pop("_scatter")
    result |= {"env": ctx.spec.env_id, "held_out_episodes": len(val), "min_start": min_start}
    if report is not None:
        report(result)
    if not write:
        return result
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
        f"{result['env']}: open-loop prediction from {result['starts']} start points "
        f"(t >= {result.get('min_start', 1)}) of {result['held_out_episodes']} held-out "
        f"episodes (reconstruction MSE "
        f"{result['reconstruction_mse']:.4g}; {_prediction(result.get('samples', 0))})",
        "  k   obs MSE    / repeat-last  / const-velocity   latent MSE   reward MAE  "
        "done acc (never-done)  recall  bal. acc",
    ]
    for k in range(result["horizon"]):
        o = result["obs_mse"]
        r = result["obs_mse_ratio"]
        lines.append(
            f"{k + 1:3d}   {o['model'][k]:<10.4g} {r['repeat_last'][k]:<13.3g} "
            f"{r['constant_velocity'][k]:<16.3g} {result['latent_mse']['model'][k]:<12.4g} "
            f"{result['reward_mae'][k]:<11.4g} {result['done_accuracy'][k]:.3f} "
            f"({result['done_accuracy_constant'][k]:.3f})        "
            f"{result['done_recall'][k]:<7.3f} {result['done_balanced_accuracy'][k]:.3f}"
        )
    per_feature = result.get("obs_mse_per_feature")
    if per_feature is not None:
        from worldmodels.evaluation.diagnostics import feature_ratios

        shown = [
            f"{i}: {r[0]:.3g} / {r[-1]:.3g}" for i, r in enumerate(feature_ratios(per_feature))
        ]
        lines.append(
            f"  per feature, obs MSE / repeat-last at k = 1 / {result['horizon']}: "
            + ", ".join(shown)
        )
    return "\n".join(lines)


def _prediction(samples: int) -> str:
    return f"mean of {samples} sampled rollouts" if samples else "tau = 0 path"


def format_eval(result: dict[str, Any]) -> str:
    return (
        f"{result['env']} [{result['method']}]: {result['mean_return']:.1f} ± "
        f"{result['std_return']:.1f} over {result['episodes']} episodes "
        f"(real env steps {result['real_env_steps']:,}, "
        f"training wall time {result['wall_seconds']:.0f}s)"
    )
