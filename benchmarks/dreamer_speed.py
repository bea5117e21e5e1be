"""How fast `--method dreamer` trains on this machine, end to end through the CLI: for each
math thread count, two short `worldmodels train` runs of an env's dreamer preset -- the random
pre-fill plus ``--steps`` and plus twice ``--steps`` real env steps -- whose difference in
training wall time over their difference in steps is the speed of training proper (acting in
the env and the updates at the preset's train ratio; start-up and pre-fill cancel out). From it:
training env steps/s, gradient steps/s (the updates the run logged), and the minutes the
preset's whole budget takes at that speed.

    .venv/bin/python benchmarks/dreamer_speed.py           # CartPole-v1, 1 and 2 threads
    .venv/bin/python benchmarks/dreamer_speed.py --env LunarLander-v3 --threads 1 --steps 1000
    python benchmarks/dreamer_speed.py --env CarRacing-v3 --device cuda --preset gpu

Each run stops only at its budget (``dreamer.stop_at_target=false``) and is scored on one
episode; runs go to a temporary folder, or ``--keep DIR``. Wall times move with the host: the
host's speed (hostspeed.py) is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import hostspeed


def train(run_dir: Path, args: argparse.Namespace, threads: int, total: int) -> dict:
    """One short run of ``total`` real env steps; returns its eval.json and the updates it
    logged."""
    cmd = [sys.executable, "-m", "worldmodels", "train", "--env", args.env, "--method",
           "dreamer", "--seed", "0", "--run-dir", str(run_dir), "--quiet", "--device",
           args.device, "--set", f"threads={threads}", "--set", "evaluate.episodes=1",
           "--set", "dreamer.stop_at_target=false"]  # fmt: skip
    for p in args.presets:
        cmd += ["--preset", p]
    for item in [*args.sets, f"dreamer.total_steps={total}"]:
        cmd += ["--set", item]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"error: `{' '.join(cmd[2:])}` failed: {tail}")
    result = json.loads((run_dir / "eval.json").read_text())
    result["updates"] = updates(run_dir)
    return result


def updates(run_dir: Path) -> float:
    """The last ``train/updates`` the run wrote to TensorBoard (nan: none)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    if "train/updates" not in events.Tags().get("scalars", []):
        return float("nan")
    return float(events.Scalars("train/updates")[-1].value)


def measure(args: argparse.Namespace, threads: int, work: Path) -> dict[str, float]:
    import worldmodels.registry  # noqa: F401  (registers the methods and their config sections)
    from worldmodels.config import parse_set, resolve

    sets = parse_set(["method=dreamer", *args.sets])
    dreamer = resolve(args.env, list(args.presets), {}, sets).section("dreamer")
    prefill, budget = dreamer.prefill, dreamer.total_steps
    small = train(work / f"t{threads}_a", args, threads, prefill + args.steps)
    large = train(work / f"t{threads}_b", args, threads, prefill + 2 * args.steps)
    seconds = large["wall_seconds"] - small["wall_seconds"]
    steps = large["real_env_steps"] - small["real_env_steps"]
    return {
        "env_steps_s": steps / seconds,
        "grad_steps_s": (large["updates"] - small["updates"]) / seconds,
        "budget_min": (budget - prefill) * seconds / steps / 60,
        "budget": budget,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--steps", type=int, default=500, help="real env steps timed per run")
    ap.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE")
    ap.add_argument(
        "--preset",
        action="append",
        default=[],
        dest="presets",
        help="named presets stacked on the env's (gpu: DreamerV3's S size)",
    )
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--keep", type=Path, help="keep the runs in this folder")
    args = ap.parse_args()
    host = hostspeed.measure()
    sizes = " ".join([*(f"--preset {p}" for p in args.presets), *args.sets]) or "(as shipped)"
    print(f"{args.env}, dreamer preset {sizes}, device {args.device}; machine: "
          f"{platform.machine()}, {os.cpu_count()} cores; host now (hostspeed.py): "
          f"{host['sgemm_gflops']} GFLOPS, {host['python_loop_ms']} ms\n")  # fmt: skip
    print("| math threads | training env steps/s | gradient steps/s | minutes for total_steps |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for threads in args.threads:
            r = measure(args, threads, work)
            print(f"| {threads} | {r['env_steps_s']:.1f} | {r['grad_steps_s']:.2f} | "
                  f"{r['budget_min']:.1f} ({r['budget']:,} steps) |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
