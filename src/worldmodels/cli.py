"""``worldmodels``: one command line for every stage. Parses, validates, calls the pipeline."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worldmodels import __version__
from worldmodels.config import preset_names
from worldmodels.errors import TrainingDivergedError, UserError
from worldmodels.methods import REGISTRY, help_text
from worldmodels.parallel import WorkerError
from worldmodels.runs import disk_error

SEED000_A2C = "a2c"  # seed 000's --use-a2c names this method

EPILOG = """examples:
  worldmodels train --env CartPole-v1 --run-dir runs/cartpole
  worldmodels train --env CarRacing-v3 --run-dir runs/car --preset debug --set vision.epochs=2
  worldmodels evaluate --run-dir runs/cartpole --episodes 100 --video runs/cartpole/ep.mp4
"""


def _common(p: argparse.ArgumentParser, run_dir_required: bool = True) -> None:
    g = p.add_argument_group("run")
    g.add_argument(
        "--env",
        "--env-name",
        metavar="ID",
        help="Gymnasium id (CartPole-v1, ALE/Pong-v5, ...) or package.module:Class. "
        "Required for a new run directory; an existing one remembers it.",
    )
    g.add_argument(
        "--run-dir",
        required=run_dir_required,
        metavar="DIR",
        help="Run directory: config.yaml, data/, checkpoints/, tb/, eval.json.",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="Master seed for every episode, batch and CMA-ES generation (default 0).",
    )
    g.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="YAML file with config sections (env:, collect:, vision:, memory:, "
        "controller:, evaluate:) applied over the presets.",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="set_items",
        help="Override one config key, e.g. --set vision.epochs=5 (repeatable).",
    )
    g.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="NAME",
        help="Named preset stacked on the env and method presets, only when creating a run: "
        f"{', '.join(preset_names())}.",
    )
    g.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default=None,
        help="Where models run (default auto: cuda if available).",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="Continue an interrupted stage from its last checkpoint.",
    )
    g.add_argument(
        "--quiet",
        action="store_true",
        help="No progress (bars on a terminal; otherwise one line per stage and every "
        "WORLDMODELS_LOG_EVERY seconds, default 60).",
    )
    g.add_argument(
        "-v", "--verbose", action="store_true", help="Also log each stage's informational lines."
    )
    g.add_argument(
        "--executor",
        choices=["local", "ray"],
        default=None,
        help="Where collection and CMA-ES evaluation run: local processes (default) or Ray "
        "(pip install 'worldmodels[ray]'). Workers: collect.workers, controller.workers.",
    )
    g.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        default=None,
        help="Ray cluster to join (host:port, or auto for the running local one); "
        "without it --executor ray starts a private local Ray.",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="worldmodels",
        description="World-model RL: collect -> V -> M -> C, evaluate.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"worldmodels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "collect",
        help="Collect episodes into the run's episode store.",
        description="Collect episodes (random policy or a trained agent) until "
        "the store holds collect.episodes; re-running continues.",
    )
    _common(p)
    p.add_argument("--episodes", type=int, help="Target episode count (collect.episodes).")
    p.add_argument("--workers", type=int, help="Worker processes (collect.workers).")
    p.add_argument("--policy", help="'random' or a trained run directory (collect.policy).")

    for name, text in [
        ("train-vision", "Train V (ConvVAE for pixels, MLP VAE for vectors)."),
        ("train-memory", "Train M (MDN-RNN with reward and done heads)."),
        ("train-controller", "Train C with CMA-ES in the real environment."),
    ]:
        p = sub.add_parser(name, help=text, description=text)
        _common(p)

    p = sub.add_parser(
        "train",
        help="Run every stage of a method in order.",
        description="Run all stages of a method in order; a stage whose artifact "
        "is complete is skipped. Ends with an evaluation.",
    )
    _common(p, run_dir_required=False)
    p.add_argument(
        "--planning-horizon",
        type=int,
        default=None,
        help="Planning horizon H (planner.horizon) for --method mpc and planners.",
    )
    p.add_argument(
        "--method",
        default=None,
        choices=list(REGISTRY),
        help=f"Training method (default classic): {help_text()}.",
    )
    for stage, alias in [
        ("collect", None),
        ("vision", "--skip-vae"),
        ("memory", "--skip-mdnrnn"),
        ("controller", None),
    ]:
        flags = [f"--skip-{stage}"] + ([alias] if alias else [])
        p.add_argument(
            *flags,
            action="store_true",
            dest=f"skip_{stage}",
            help=f"Skip the {stage} stage (its artifact must exist for later ones).",
        )
    p.add_argument(
        "--tau",
        type=float,
        default=None,
        help="Dream temperature tau (memory.temperature): > 1 makes the dream harder to "
        "exploit, 0 uses M's mean.",
    )
    p.add_argument(
        "--pretrain-vision",
        action="store_true",
        help="a2c: pre-train V on random episodes first (ac.pretrain_vision); without a2c "
        "(seed 000's pre-training command): collect and train V only.",
    )
    p.add_argument(
        "--pretrain-memory",
        action="store_true",
        help="a2c: pre-train V and M on random episodes first (ac.pretrain_memory); without "
        "a2c: collect and train V and M only.",
    )
    p.add_argument(
        "--use-a2c", action="store_true", help="Seed 000's flag: the same as --method a2c."
    )
    p.add_argument(
        "--use-improved-controller",
        action="store_true",
        help="Seed 000's flag: the MLP actor-critic (a2c's) acting with planning, 70%% policy "
        "and 30%% plan (evaluate.planner=auto, planner.blend=0.3).",
    )
    p.add_argument(
        "--max-epoch",
        type=int,
        help="Seed 000's flag: with --use-a2c / --method a2c the number of updates "
        "(ac.updates); with --pretrain-vision or --pretrain-memory alone, the epochs of that "
        "stage (vision.epochs / memory.epochs).",
    )
    p.add_argument(
        "--save-path",
        metavar="DIR",
        help="Seed 000's flag: the run directory (same as --run-dir).",
    )
    p.add_argument(
        "--load-path",
        metavar="PATH",
        help="Seed 000's flag: continue from a run directory, or from a file in it (e.g. "
        "DIR/pretrainedV.pt: DIR); one run directory holds V, M and the controller.",
    )
    p.add_argument("--n-steps", type=int, help="Steps per actor-critic update (ac.n_steps).")
    p.add_argument("--learning-rate", type=float, help="Actor-critic learning rate (ac.lr).")
    p.add_argument("--no-eval", action="store_true", help="Do not evaluate at the end.")
    p.add_argument("--episodes", type=int, help="Evaluation episodes (evaluate.episodes).")
    p.add_argument("--video", metavar="PATH", help="Write one evaluation episode (.mp4/.gif).")

    p = sub.add_parser(
        "evaluate",
        help="Evaluate the agent in the real env; writes eval.json.",
        description="Run N real episodes with seeds apart from training; print "
        "mean ± std and write eval.json.",
    )
    _common(p)
    p.add_argument("--episodes", type=int, default=None, help="Episodes (default 100).")
    p.add_argument("--video", metavar="PATH", help="Write one episode as .mp4 or .gif.")
    p.add_argument(
        "--method",
        default=None,
        help="Method name recorded in eval.json; 'compare' compares the run directories "
        "inside --run-dir instead (as `worldmodels compare`).",
    )
    p.add_argument(
        "--planner",
        choices=["auto", "enumerate", "cem", "mppi"],
        default=None,
        help="Act by planning with M: enumerate (discrete), cem or mppi (continuous); on an "
        "actor-critic run its policy is blended in (planner.blend) and its critic values "
        "the horizon.",
    )

    p = sub.add_parser(
        "compare",
        help="One table over finished runs: mean ± std, IQM and CIs over seeds, steps, time.",
        description="Compare runs (each with eval.json) of one env: per method, the mean "
        "return over seeds ± std, a 95% confidence interval, the IQM with a stratified "
        "bootstrap interval, the probability of improvement over PPO, real env steps, wall "
        "time and the steps at which the learning curve reached the solved threshold; figures "
        "of return vs real env steps and the performance profile. Writes compare.json, "
        "compare.md, compare_<env>.png and profile_<env>.png.",
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="Run directories, or folders holding run directories.",
    )
    p.add_argument("--out", default=".", metavar="DIR", help="Where to write (default: here).")

    p = sub.add_parser(
        "report",
        help="One self-contained HTML page of finished runs, to share.",
        description="The evaluation table, compare's statistics, learning curves, the "
        "performance profile, diagnose's plots and the videos of each run, its config's "
        "difference from the defaults, versions, machine and threads: one HTML file with every "
        "image embedded (it needs no network). Reads the runs; takes no lock.",
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="Run directories, or folders holding run directories.",
    )
    p.add_argument(
        "--out", default="report.html", metavar="FILE.html", help="Default: report.html."
    )

    p = sub.add_parser(
        "diagnose",
        help="Open-loop k-step prediction errors of V + M on held-out episodes.",
        description="From many start points of held-out episodes, roll M forward k = "
        "1..H steps under the logged actions; per-k errors in latent and observation space, "
        "reward MAE, done accuracy, against repeat-last and constant-velocity baselines. "
        "Writes diagnostics.json and plots/diagnostics_*.png.",
    )
    _common(p)
    p.add_argument("--horizon", type=int, default=15, help="Steps ahead H (default 15).")
    p.add_argument("--max-starts", type=int, default=2000, help="Start points used (default 2000).")
    p.add_argument(
        "--min-start",
        type=int,
        default=1,
        metavar="T",
        help="Only start points t >= T of each episode, M's state teacher-forced from the "
        "episode's first step as when acting (default 1; e.g. 100 to judge M late in "
        "episodes, past its training windows).",
    )
    p.add_argument(
        "--no-write",
        action="store_true",
        help="Print the errors only: write nothing into the run (no diagnostics.json, plots or "
        "latent cache) and take no lock, so it can run beside a training command.",
    )

    p = sub.add_parser(
        "envs",
        help="List environment presets.",
        description="List the environments with presets and named presets.",
    )
    _common(p, run_dir_required=False)
    return parser


def _check_video(path: str | None) -> None:
    if path and not path.lower().endswith((".mp4", ".gif")):
        raise UserError(f"--video {path}: the file must end in .mp4 or .gif")


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UserError(f"{name} must be >= 1, got {value}")


def _seed000_paths(args: argparse.Namespace) -> None:
    """``--save-path`` / ``--load-path`` name the run directory (one holds every stage)."""

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


def _seed000_pretraining(args: argparse.Namespace, sets: list[str]) -> bool:
    """Seed 000's ``--pretrain-vision`` / ``--pretrain-memory`` without a2c train only those
    stages; ``--max-epoch`` is their epochs then, the number of updates with a2c / wm-ppo, and
    CMA-ES generations with classic / dream."""
    method = SEED000_A2C if args.use_a2c else (args.method or "classic")
    pretrain_only = (args.pretrain_vision or args.pretrain_memory) and method != SEED000_A2C
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
        _seed000_paths(args)
        pretrain_only = _seed000_pretraining(args, sets)
        if args.tau is not None:
            if args.tau < 0:
                raise UserError(f"--tau must be >= 0, got {args.tau}")
            sets.append(f"memory.temperature={args.tau}")
        if args.pretrain_vision and not pretrain_only:
            sets.append("ac.pretrain_vision=true")
        if args.pretrain_memory and not pretrain_only:
            sets.append("ac.pretrain_memory=true")
        if args.use_a2c:
            sets.append(f"method={SEED000_A2C}")
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
            if pretrain_only:  # seed 000's pre-training commands: those stages, no evaluation
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


def _print_written(ctx, video: str | None) -> None:
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


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the stage in progress stops at once, its last
    checkpoint stays, the run directory's lock is released."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    for level in (logging.INFO, logging.WARNING):
        logging.addLevelName(level, logging.getLevelName(level).lower())
    logging.basicConfig(level=logging.WARNING, format="worldmodels: %(levelname)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        logging.getLogger().setLevel(logging.INFO)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return run(args)
    except UserError as exc:
        print(f"worldmodels: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read or write the system refused, outside the atomic writers
        print(f"worldmodels: error: {disk_error(exc, verb='access')}", file=sys.stderr)
        return 2
    except (TrainingDivergedError, WorkerError, FloatingPointError) as exc:
        # training or acting failed (the worker's traceback, if any, is past the first line)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"worldmodels: error: {first}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"worldmodels: {what}; continue with the same command and --resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
