"""A dreamer run's policy two ways on the same fresh episodes: the actor's most likely action
(what `worldmodels evaluate` scores) and an action sampled from the actor (what it trained and
was selected with), for the best and the last checkpoint. An actor held stochastic by
`dreamer.entropy_floor` can land LunarLander with its samples and not with its mode.

    .venv/bin/python benchmarks/dreamer_sampling.py benchmarks/runs/suite/LunarLander-v3/dreamer_s0
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import worldmodels.methods  # noqa: F401  (registers the dreamer config section)
from worldmodels.data.rollout import run_episode
from worldmodels.envs import EnvSpec, make_env
from worldmodels.errors import UserError, run_main
from worldmodels.runs import RunDir
from worldmodels.training.dreamer import DreamerPolicy, load_dreamer

EVAL_SEED = 10_000_000
"""Seeds of these episodes (training and evaluation use others)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--episodes", type=int, default=30)
    args = ap.parse_args()
    run = RunDir(args.run_dir)
    if not run.has_config() or not run.has("dreamer/best") or args.episodes < 1:
        raise UserError(
            f"{args.run_dir} is not a dreamer run with dreamer/best (or --episodes < 1)"
        )
    cfg = run.load_config()
    spec = EnvSpec.from_dict(json.loads(run.spec_path.read_text()))
    torch.set_num_threads(1)
    print(f"{args.run_dir}: {args.episodes} episodes each (seeds {EVAL_SEED} + k)\n")
    print("| checkpoint | action | mean return ± std | episodes with return > 100 |")
    print("|---|---|---|---|")
    env = make_env(cfg.env)
    try:
        for which in ("best", "last"):
            agent = load_dreamer(run, cfg, spec, torch.device("cpu"), which)
            for mode in (True, False):
                torch.manual_seed(0)
                returns = [
                    float(run_episode(env, spec, DreamerPolicy(agent, mode), EVAL_SEED + k)
                          .rewards.sum())
                    for k in range(args.episodes)
                ]  # fmt: skip
                print(
                    f"| {which} | {'most likely' if mode else 'sampled'} | "
                    f"{np.mean(returns):.1f} ± {np.std(returns):.1f} | "
                    f"{sum(r > 100 for r in returns)} / {len(returns)} |",
                    flush=True,
                )
    finally:
        env.close()


if __name__ == "__main__":
    run_main(main)
