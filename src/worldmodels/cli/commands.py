"""What each ``worldmodels`` subcommand does with its parsed arguments: the flags become
``--set`` items (the original World Models scripts' aliases translated here), then the
pipeline runs and the result is printed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from worldmodels.config import preset_names
from worldmodels.errors import UserError
from worldmodels.registry import REGISTRY
from worldmodels.runs import Context

A2C = "a2c"
"""The method ``--use-a2c`` names."""


def _check_video(path: str | None) -> None:
    if path and not path.lower().endswith((".mp4", ".gif")):
        raise UserError(f"--video {path}: the file must end in .mp4 or .gif")


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UserError(f"{name} must be >= 1, got {value}")


def _alias_paths(args: argparse.Namespace) -> None:
    """The original scripts' ``--save-path`` / ``--load-path`` name the run directory (one
    holds every stage)."""

    dirs = []
    for flag, value in [("--run-dir", args.run_dir), ("--save-path", args.save_path)]:
        if value:
            dirs.append((flag, Path(value)))
    if args.load_path:
        path = Path(args.load_path)
        if path.suffix and not path.is_dir():  # a checkpoint file: its run directory
            path = next((p for p in path.parents if (p / "config.yaml").exists()), path.parent)
        if not (path / "config.yaml").exists():  # continuing: a typo must not start afresh
            raise UserError(
                f"--load-path {args.load_path} is not a run directory or a file in one (no "
                f"config.yaml in {path}); check the path (to start a new run use --save-path)"
            )
        dirs.append(("--load-path", path))
    if not dirs:
        raise UserError("train needs a run directory: --run-dir DIR (or --save-path DIR)")
    first_flag, first = dirs[0]
    for flag, d in dirs[1:]:
        if d.resolve() != first.resolve():
            raise UserError(
                f"{first_flag} {first} and {flag} {d} differ; one run directory holds V, M "
                "and the controller, so pass the same directory"
            )
    args.run_dir = str(first)


def _alias_pretraining(args: argparse.Namespace, sets: list[str]) -> bool:
    """The original scripts' pre-training commands: ``--pretrain-vision`` /
    ``--pretrain-memory`` without a2c train only those stages; ``--max-epoch`` is their epochs
    then, the number of updates with a2c / wm-ppo, and CMA-ES generations with classic /
    dream."""
    method = A2C if args.use_a2c else (args.method or "classic")
    pretrain_only = (args.pretrain_vision or args.pretrain_memory) and method != A2C
    if args.max_epoch is not None:
        _positive("--max-epoch", args.max_epoch)
        key = REGISTRY[method].epochs_key
        if pretrain_only:
            stage = "memory" if args.pretrain_memory else "vision"
            sets.append(f"{stage}.epochs={args.max_epoch}")
        elif key:
            sets.append(f"{key}={args.max_epoch}")
        else:
            raise UserError(
                f"--max-epoch does not apply to --method {method}; set its budget with "
                "--set (see its config section in `worldmodels envs`)"
            )
    return bool(pretrain_only)


def run(args: argparse.Namespace) -> int:
    from worldmodels import pipeline

    if args.command == "envs":
        from worldmodels.config import env_presets, method_files
        from worldmodels.envs import PRESET_NOTES

        print("env presets (any other Gymnasium id or package.module:Class works too):")
        for env_id in env_presets():
            print(f"  {env_id:18s} {PRESET_NOTES.get(env_id, '')}")
        print("methods (--method NAME), with the envs they have presets for:")
        for name, method in REGISTRY.items():
            tuned = ", ".join(method_files().get(name, {}).get("envs") or {}) or "none"
            print(
                f"  {name:8s} {method.summary}; config: {', '.join(method.sections)}; "
                f"presets: {tuned}"
            )
        print("named presets (--preset NAME): " + ", ".join(preset_names()))
        return 0

    if args.command == "compare":
        return _compare([Path(p) for p in args.runs], Path(args.out))
    if args.command == "report":
        from worldmodels.evaluation.report import report

        if not args.out.endswith((".html", ".htm")):
            raise UserError(f"--out {args.out} must end in .html")
        written, count = report([Path(p) for p in args.runs], Path(args.out))
        print(f"wrote {written} ({count} runs, {written.stat().st_size / 1e6:.1f} MB)")
        return 0
    if args.command == "evaluate" and args.method == "compare":
        return _compare([Path(args.run_dir)], Path(args.run_dir))
    sets = list(args.set_items)
    if args.executor:
        sets.append(f"parallel.executor={args.executor}")
    if args.ray_address:
        sets.append(f"parallel.ray_address={json.dumps(args.ray_address)}")
    if args.command == "collect":
        _positive("--episodes", args.episodes)
        _positive("--workers", args.workers)
        for key, value in [
            ("collect.episodes", args.episodes),
            ("collect.workers", args.workers),
            ("collect.policy", args.policy),
        ]:
            if value is not None:
                sets.append(f"{key}={value}")
    if args.command in ("train", "evaluate"):
        _check_video(args.video)
        _positive("--episodes", args.episodes)
        if args.method:
            sets.append(f"method={args.method}")
    if args.command == "train":
        _alias_paths(args)
        pretrain_only = _alias_pretraining(args, sets)
        if args.tau is not None:
            if args.tau < 0:
                raise UserError(f"--tau must be >= 0, got {args.tau}")
            sets.append(f"memory.temperature={args.tau}")
        if args.pretrain_vision and not pretrain_only:
            sets.append("ac.pretrain_vision=true")
        if args.pretrain_memory and not pretrain_only:
            sets.append("ac.pretrain_memory=true")
        if args.use_a2c:
            sets.append(f"method={A2C}")
        if args.use_improved_controller:
            sets += ["evaluate.planner=auto", "planner.blend=0.3"]
        _positive("--n-steps", args.n_steps)
        if args.n_steps is not None:
            sets.append(f"ac.n_steps={args.n_steps}")
        if args.learning_rate is not None:
            sets.append(f"ac.lr={args.learning_rate}")
        if args.planning_horizon is not None:
            if args.planning_horizon < 1:
                raise UserError(f"--planning-horizon must be >= 1, got {args.planning_horizon}")
            sets.append(f"planner.horizon={args.planning_horizon}")
    no_write = getattr(args, "no_write", False)
    ctx = pipeline.open_run(
        args.run_dir,
        args.env,
        args.preset,
        args.config,
        sets,
        args.seed,
        args.device,
        args.resume,
        progress=not args.quiet,
        reads=args.command in ("evaluate", "diagnose"),
        writes=not no_write,
    )
    try:
        if args.command == "collect":
            s = pipeline.stage_collect(ctx)
            print(
                f"{s['episodes']} episodes ({s['steps']:,} steps, mean return "
                f"{s['mean_return']:.1f}) in {ctx.run.episodes}"
            )
        elif args.command == "train-vision":
            m = pipeline.stage_vision(ctx)
            print(f"vision: {_fmt(m)} -> {ctx.run.ckpt_path('vision/best')}")
        elif args.command == "train-memory":
            m = pipeline.stage_memory(ctx)
            print(f"memory: {_fmt(m)} -> {ctx.run.ckpt_path('memory/best')}")
        elif args.command == "train-controller":
            m = pipeline.stage_controller(ctx)
            print(
                f"controller: best score {m.get('best_score', float('nan')):.1f} after "
                f"{m.get('generation')} generations -> "
                f"{ctx.run.ckpt_path('controller/best')}"
            )
        elif args.command == "train":
            skip = {
                s
                for s in ("collect", "vision", "memory", "controller")
                if getattr(args, f"skip_{s}")
            }
            if pretrain_only:  # the original pre-training commands: those stages, no evaluation
                stages = ["collect", "vision"] + (["memory"] if args.pretrain_memory else [])
                for name in stages:
                    if name not in skip:
                        pipeline.STAGES[name](ctx)
                print(f"pre-trained {' and '.join(stages[1:])} in {ctx.run.root}")
            else:
                pipeline.train(ctx, ctx.cfg.method, skip)
            if not args.no_eval and not pretrain_only:
                pipeline.evaluate(ctx, args.episodes, args.video, report=_print_result)
                _print_written(ctx, args.video)
        elif args.command == "diagnose":
            _positive("--max-starts", args.max_starts)
            pipeline.diagnose(
                ctx,
                args.horizon,
                args.max_starts,
                args.min_start,
                samples=args.samples,
                write=not no_write,
                report=lambda r: print(pipeline.format_diagnostics(r), flush=True),
            )
            if not no_write:
                written = ctx.run.root / "diagnostics.json"
                print(f"wrote {written} and {ctx.run.plots}/diagnostics_*.png")
        elif args.command == "evaluate":
            pipeline.evaluate(ctx, args.episodes, args.video, args.planner, report=_print_result)
            _print_written(ctx, args.video)
    finally:
        ctx.close()
    return 0


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))


def _print_result(result: dict[str, Any]) -> None:
    """Shown before eval.json is written, so a disk that refuses it cannot hide the score."""
    from worldmodels.pipeline import format_eval

    print(format_eval(result), flush=True)


def _print_written(ctx: Context, video: str | None) -> None:
    print(
        f"wrote {ctx.run.eval_path}; TensorBoard: tensorboard --logdir {ctx.run.tb}"
        + (f"; video: {video}" if video else "")
    )


def _compare(paths: list[Path], out: Path) -> int:
    from worldmodels.evaluation.compare import compare

    text, notes = compare(paths, out)
    print(text)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {out / 'compare.json'} and {out / 'compare.md'}")
    return 0
