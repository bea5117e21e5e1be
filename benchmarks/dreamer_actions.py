"""Does a dreamer run's world model tell its actions apart? On the stored steps of the run's
last ``--episodes`` episodes (on LunarLander-v3 with ``--falling``: only the steps where the
lander is above y = 0.3 and falling faster than 0.2), each discrete action is imagined one prior
step from the step's posterior state: the reward head's reward, the continue head, the critic's
value there and Q = r + gamma * c * V, against the real rewards the stored steps got after that
action, and the actor's mean probabilities there. A model whose one-step rewards are the same
for every action gives the actor only noise to follow.

    .venv/bin/python benchmarks/dreamer_actions.py --falling \
        benchmarks/runs/suite/LunarLander-v3/dreamer_s0

One math thread; the run's ``dreamer/last`` checkpoint (``--which best`` for the best).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import worldmodels.methods  # noqa: F401  (registers the dreamer config section)
from worldmodels.data.store import EpisodeStore
from worldmodels.errors import UserError, run_main
from worldmodels.models.rssm import RssmState
from worldmodels.pipeline import open_run
from worldmodels.training.dreamer import dreamer_world, load_dreamer


def chosen_steps(obs: np.ndarray, length: int, falling: bool) -> list[int]:
    """The non-terminal steps t < length - 1 to read; with ``falling`` only LunarLander's
    falling ones (y > 0.3, vy < -0.2)."""
    steps = range(length - 1)
    return [t for t in steps if obs[t, 1] > 0.3 and obs[t, 3] < -0.2] if falling else list(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--which", choices=["last", "best"], default="last")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--falling", action="store_true", help="LunarLander-v3: falling steps only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ctx = open_run(args.run_dir, device="cpu", progress=False, reads=True, writes=False)
    if ctx.cfg.method != "dreamer" or ctx.spec.action_kind != "discrete":
        raise UserError(f"{args.run_dir} is not a dreamer run with discrete actions: give one")
    if args.falling and ctx.cfg.env.id != "LunarLander-v3":
        raise UserError("--falling reads LunarLander-v3's observation: drop it for this env")
    agent = load_dreamer(ctx.run, ctx.cfg, ctx.spec, ctx.device, args.which)
    vision, wm, n_act = dreamer_world(agent).vision, agent.wm, ctx.spec.action_dim
    store = EpisodeStore(ctx.run.episodes)
    model: list[list[np.ndarray]] = [[] for _ in range(n_act)]
    real: list[list[float]] = [[] for _ in range(n_act)]
    probs = []
    for i in list(store.valid_indices())[-args.episodes :]:
        ep = store.read(i)
        obs, acts = np.asarray(ep.observations), np.asarray(ep.actions)
        steps = chosen_steps(obs, len(acts), args.falling)
        if not steps:
            continue
        for t in steps:
            real[int(acts[t])].append(float(ep.rewards[t]))
        f = torch.as_tensor(vision.encode_episode(obs, acts, ctx.device)[0])[steps]
        start = RssmState(f[:, : wm.rssm.deter], f[:, wm.rssm.deter :])
        with torch.no_grad():
            probs.append(agent.actor.dist(f).probs.numpy())
            for a in range(n_act):
                act = vision.action_features(torch.full((len(steps),), a))
                nxt, logits = wm.rssm.img_step(start, act)
                feat = RssmState(nxt.h, wm.rssm.sample(logits, mode=True)).feat()
                r, c = wm.reward_mean(feat), wm.cont_prob(feat)
                v = agent.twohot.mean(agent.critic(feat))
                q = r + agent.dc.gamma * c * v
                model[a].append(torch.stack([r, c, v, q], 1).numpy())
    if not probs:
        raise UserError(f"{args.run_dir}: no stored step matches; give more --episodes")
    p = np.concatenate(probs)
    entropy = float(-(p * np.log(p)).sum(1).mean())
    print(f"{args.run_dir} (dreamer/{args.which}): {len(p)} stored steps of the last "
          f"{args.episodes} episodes{' (falling)' if args.falling else ''}; the actor's "
          f"entropy there {entropy:.3f} nats (uniform: {np.log(n_act):.3f})")  # fmt: skip
    print("| action | actor's probability | model reward | P(continue) | critic V(next) "
          "| Q = r + gamma c V | real reward (mean) | stored steps |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for a in range(n_act):
        r, c, v, q = np.concatenate(model[a]).mean(0)
        mean_real = f"{np.mean(real[a]):.3f}" if real[a] else "—"
        print(f"| {a} | {p[:, a].mean():.3f} | {r:.3f} | {c:.3f} | {v:.2f} | {q:.2f} "
              f"| {mean_real} | {len(real[a])} |")  # fmt: skip


if __name__ == "__main__":
    run_main(main)
