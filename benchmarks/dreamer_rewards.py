"""Does a dreamer run's reward head see the rewards that matter? On stored real episodes (the
first ``--first``, the random pre-fill, and the last ``--episodes``), the reward head on the
posterior states against the real rewards: the model's return beside the real one, and its mean
prediction on the steps with a positive reward (CarRacing's new track tiles) and on the rest.
Then, from every ``--every``-th posterior state of those episodes, each fixed action held for
``--horizon`` imagined prior steps: the sum of the predicted rewards and the chance to still be
running at the end. A head that predicts the same on rewarded and unrewarded steps, or a world
that pays every held action the same, gives the actor in imagination nothing to follow.

    .venv/bin/python benchmarks/dreamer_rewards.py benchmarks/runs/suite/CarRacing-v3/dreamer_s4 \
        --action gas=0,1,0 --action brake=0,0,1 --action coast=0,0,0 --action left+gas=-1,1,0

Fixed actions: every discrete action by default; continuous ones by ``--action NAME=v1,v2,...``
in the env's units (default: the action space's low, middle and high corners). One math thread;
the run's ``dreamer/last`` checkpoint (``--which best`` for the best).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import worldmodels.methods  # noqa: F401  (registers the dreamer config section)
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import EnvSpec
from worldmodels.errors import UserError, run_main
from worldmodels.models.rssm import RssmState
from worldmodels.pipeline import open_run
from worldmodels.training.dreamer import dreamer_world, load_dreamer


def fixed_actions(spec: EnvSpec, given: list[str]) -> dict[str, np.ndarray]:
    """Name -> one env action: ``NAME=v1,v2,...`` for continuous actions (checked against the
    space), every index for discrete ones."""
    if spec.action_kind == "discrete":
        if given:
            raise UserError("--action is for continuous actions; a discrete run reads every one")
        return {str(a): np.asarray(a, np.int64) for a in range(spec.action_dim)}
    low = np.asarray(spec.action_low, np.float32)
    high = np.asarray(spec.action_high, np.float32)
    if not given:
        return {"low": low, "middle": (low + high) / 2, "high": high}
    out = {}
    for item in given:
        name, _, values = item.partition("=")
        try:
            action = np.asarray([float(v) for v in values.split(",")], np.float32)
        except ValueError:
            action = np.zeros(0, np.float32)
        if not name or action.shape != low.shape or (action < low).any() or (action > high).any():
            raise UserError(f"--action {item!r}: give NAME=v1,...,v{len(low)} within "
                            f"{low.tolist()} .. {high.tolist()}")  # fmt: skip
        out[name] = action
    return out


def means(pred: np.ndarray, real: np.ndarray, mask: np.ndarray) -> str:
    """The model's and the real mean reward on the masked steps ("—" where none)."""
    return f"{pred[mask].mean():.3f} ({real[mask].mean():.3f})" if mask.any() else "—"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--which", choices=["last", "best"], default="last")
    ap.add_argument("--first", type=int, default=2, help="the run's first episodes to read")
    ap.add_argument("--episodes", type=int, default=5, help="the run's last episodes to read")
    ap.add_argument("--action", action="append", default=[], help="NAME=v1,v2,... (continuous)")
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument("--every", type=int, default=10)
    args = ap.parse_args()
    if min(args.first, args.episodes) < 0 or min(args.horizon, args.every) < 1:
        raise UserError("--first and --episodes must be >= 0, --horizon and --every >= 1")
    torch.set_num_threads(1)
    ctx = open_run(args.run_dir, device="cpu", progress=False, reads=True, writes=False)
    if ctx.cfg.method != "dreamer":
        raise UserError(f"{args.run_dir} is not a dreamer run: give one")
    actions = fixed_actions(ctx.spec, args.action)
    agent = load_dreamer(ctx.run, ctx.cfg, ctx.spec, ctx.device, args.which)
    vision, wm = dreamer_world(agent).vision, agent.wm
    store = EpisodeStore(ctx.run.episodes)
    indices = list(store.valid_indices())
    chosen = sorted(set(indices[: args.first]) | set(indices[len(indices) - args.episodes :]))
    if not chosen:
        raise UserError(f"{args.run_dir}: no stored episode to read; give --first or --episodes")
    print(f"{args.run_dir} (dreamer/{args.which}): the reward head on the stored episodes")
    print("| episode | real return | model's return | rewarded steps | model on them (real) "
          "| model on the rest (real) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    starts = []
    for i in chosen:
        ep = store.read(i)
        feat = torch.as_tensor(vision.encode_episode(ep.observations, ep.actions, ctx.device)[0])
        with torch.no_grad():
            pred = wm.reward_mean(feat[1:]).numpy()
        real = np.asarray(ep.rewards, np.float64)
        pos = real > 0
        print(f"| {i} | {real.sum():.1f} | {pred.sum():.1f} | {int(pos.sum())} of {len(real)} "
              f"| {means(pred, real, pos)} | {means(pred, real, ~pos)} |")  # fmt: skip
        starts.append(feat[: -1 : args.every])
    start_feat = torch.cat(starts)
    start = RssmState(start_feat[:, : wm.rssm.deter], start_feat[:, wm.rssm.deter :])
    print(f"\nEach action held for {args.horizon} imagined steps from {len(start_feat)} posterior "
          "states of those episodes:")  # fmt: skip
    print("| action | imagined reward (sum, mean over starts) | P(still running) |")
    print("|---|---|---|")
    for name, action in actions.items():
        held = torch.as_tensor(action)[None].expand(len(start_feat), *action.shape)
        taken = vision.action_features(held)
        state, total, alive = start, torch.zeros(len(start_feat)), torch.ones(len(start_feat))
        with torch.no_grad():
            for _ in range(args.horizon):
                nxt, logits = wm.rssm.img_step(state, taken)
                state = RssmState(nxt.h, wm.rssm.sample(logits, mode=True))
                feat = state.feat()
                total = total + alive * wm.reward_mean(feat)
                alive = alive * wm.cont_prob(feat)
        print(f"| {name} | {total.mean():.3f} | {alive.mean():.3f} |")


if __name__ == "__main__":
    run_main(main)
