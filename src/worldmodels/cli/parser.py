"""The ``worldmodels`` argument parser: every subcommand and flag with its help (the docs'
CLI reference is generated from ``build_parser``). Flags become ``--set`` items in
``commands.py``.

Besides its own flags, ``train`` accepts the flags of the original World Models scripts as
aliases (``ALIASES``), so their command lines keep working."""

from __future__ import annotations

import argparse

from worldmodels import __version__
from worldmodels.config import preset_names
from worldmodels.methods import help_text
from worldmodels.registry import REGISTRY

ORIGINAL = "alias of the original World Models scripts' flag"
"""How the help describes a flag kept from the original World Models scripts."""

ALIASES = (
    "--env-name",
    "--skip-vae",
    "--skip-mdnrnn",
    "--use-a2c",
    "--use-improved-controller",
    "--max-epoch",
    "--save-path",
    "--load-path",
)
"""The original World Models scripts' flags ``train`` accepts (``--pretrain-vision`` and
``--pretrain-memory`` without a2c are their pre-training commands too)."""

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
        "Required for a new run directory; an existing one remembers it. --env-name: "
        f"{ORIGINAL}.",
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
            help=f"Skip the {stage} stage (its artifact must exist for later ones)"
            + (f"; {alias}: {ORIGINAL}." if alias else "."),
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
        "(the original World Models scripts' pre-training command): collect and train V "
        "only.",
    )
    p.add_argument(
        "--pretrain-memory",
        action="store_true",
        help="a2c: pre-train V and M on random episodes first (ac.pretrain_memory); without "
        "a2c: collect and train V and M only.",
    )
    p.add_argument("--use-a2c", action="store_true", help=f"The same as --method a2c ({ORIGINAL}).")
    p.add_argument(
        "--use-improved-controller",
        action="store_true",
        help="Evaluate the actor-critic (a2c's MLP) acting with planning, 70%% policy and "
        f"30%% plan: evaluate.planner=auto, planner.blend=0.3 ({ORIGINAL}).",
    )
    p.add_argument(
        "--max-epoch",
        type=int,
        help="The number of updates (ac.updates) with --use-a2c, a2c or wm-ppo; CMA-ES "
        "generations (controller.generations) with classic or dream; with --pretrain-vision "
        "or --pretrain-memory alone, the epochs of that stage (vision.epochs / memory.epochs) "
        f"({ORIGINAL}).",
    )
    p.add_argument(
        "--save-path",
        metavar="DIR",
        help=f"The run directory, the same as --run-dir ({ORIGINAL}).",
    )
    p.add_argument(
        "--load-path",
        metavar="PATH",
        help="Continue from a run directory, or from a file in it (e.g. DIR/pretrainedV.pt: "
        f"DIR); one run directory holds V, M and the controller ({ORIGINAL}).",
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
        "--samples",
        type=int,
        default=16,
        metavar="N",
        help="Where M's tau = 0 step is not its mean (the RSSM takes each categorical latent's "
        "mode), predict by the mean of N open-loop rollouts sampled at tau = 1 (default 16; 0: "
        "the tau = 0 path). Ms whose tau = 0 step is their mean ignore it.",
    )
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
