"""A dreamer run's policy two ways on the same fresh episodes: the actor's most likely action
(what `worldmodels evaluate` scores) and an action sampled from the actor (what it trained and
was selected with), for the best and the last checkpoint. An actor held stochastic by
`dreamer.entropy_floor` can land LunarLander with its samples and not with its mode.

``--rest`` (LunarLander only) adds a diagnostic, not a policy of the method: the same actor, but
"do nothing" whenever both legs touch the ground. LunarLander pays its +100 when Box2D puts the
lander to sleep, after ~0.5 s with no engine fired; an actor that fires its side engines on the
ground never gets it and is cut at the time limit. The gap between the rows says what that
costs.

    .venv/bin/python benchmarks/dreamer_sampling.py benchmarks/runs/suite/LunarLander-v3/dreamer_s0
    .venv/bin/python benchmarks/dreamer_sampling.py <run dir> --rest
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import torch
from episode_ends import KINDS, ending

import worldmodels.methods  # noqa: F401  (registers the dreamer config section)
from worldmodels.data.rollout import run_episode
from worldmodels.envs import EnvSpec, make_env
from worldmodels.errors import UserError, run_main
from worldmodels.runs import RunDir
from worldmodels.training.dreamer import DreamerPolicy, load_dreamer

EVAL_SEED = 10_000_000
"""Seeds of these episodes (training and evaluation use others)."""


class RestOnGround:
    """A dreamer policy that does nothing (LunarLander's action 0) while both legs touch; the
    model is fed the action taken."""

    def __init__(self, inner: DreamerPolicy):
        self.inner = inner

    def reset(self, n: int) -> Any:
        return self.inner.reset(n)

    def act(self, obs: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        action, (rssm_state, prev, first) = self.inner.act(obs, state)
        down = (obs[:, 6] > 0.5) & (obs[:, 7] > 0.5)
        action = np.where(down, 0, action)
        prev = self.inner.agent.actor.features(torch.as_tensor(action))
        return action, (rssm_state, prev, first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--rest", action="store_true", help="also: do nothing on the ground")
    args = ap.parse_args()
    run = RunDir(args.run_dir)
    if not run.has_config() or not run.has("dreamer/best") or args.episodes < 1:
        raise UserError(
            f"{args.run_dir} is not a dreamer run with dreamer/best (or --episodes < 1)"
        )
    cfg = run.load_config()
    spec = EnvSpec.from_dict(json.loads(run.spec_path.read_text()))
    if args.rest and not spec.env_id.startswith("LunarLander"):
        raise UserError(f"--rest reads LunarLander's leg contacts; {spec.env_id} has none")
    torch.set_num_threads(1)
    print(f"{args.run_dir}: {args.episodes} episodes each (seeds {EVAL_SEED} + k)\n")
    print("| checkpoint | action | mean return ± std | episodes with return > 100 | "
          + " | ".join(KINDS) + " |")  # fmt: skip
    print("|---" * (4 + len(KINDS)) + "|")
    rests = (False, True) if args.rest else (False,)
    env = make_env(cfg.env)
    try:
        for which in ("best", "last"):
            agent = load_dreamer(run, cfg, spec, torch.device("cpu"), which)
            for mode, rest in ((m, r) for m in (True, False) for r in rests):
                policy: Any = DreamerPolicy(agent, mode)
                policy = RestOnGround(policy) if rest else policy
                torch.manual_seed(0)
                eps = [run_episode(env, spec, policy, EVAL_SEED + k) for k in range(args.episodes)]
                returns = [float(ep.rewards.sum()) for ep in eps]
                ends = [ending(ep.terminated, ep.rewards) for ep in eps]
                label = ("most likely" if mode else "sampled") + (", rest on the ground" * rest)
                print(
                    f"| {which} | {label} | "
                    f"{np.mean(returns):.1f} ± {np.std(returns):.1f} | "
                    f"{sum(r > 100 for r in returns)} / {len(returns)} | "
                    + " | ".join(str(ends.count(k)) for k in KINDS)
                    + " |",
                    flush=True,
                )
    finally:
        env.close()


if __name__ == "__main__":
    run_main(main)
