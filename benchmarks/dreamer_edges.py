"""Where a CartPole dreamer run's world model is blind: over every stored step, by the cart's
distance from the centre |x|, the continue head's P(continue) on the filtered posterior (at all
steps and at the terminal ones) and the decoder's |x| error. The track ends at |x| = 2.4.

    .venv/bin/python benchmarks/dreamer_edges.py benchmarks/runs/suite/CartPole-v1/dreamer_s1

One math thread; the run's ``dreamer/last`` checkpoint (``--which best`` for the best).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import worldmodels.methods  # noqa: F401  (registers the dreamer config section)
from worldmodels.data.store import EpisodeStore
from worldmodels.errors import UserError, run_main
from worldmodels.pipeline import open_run
from worldmodels.training.dreamer import dreamer_world, load_dreamer

BANDS = [(0.0, 1.5), (1.5, 2.0), (2.0, 2.2), (2.2, 2.3), (2.3, 2.4), (2.4, 9.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--which", choices=["last", "best"], default="last")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ctx = open_run(args.run_dir, device="cpu", progress=False, reads=True, writes=False)
    if ctx.cfg.env.id != "CartPole-v1" or ctx.cfg.method != "dreamer":
        raise UserError(f"{args.run_dir} is not a CartPole-v1 dreamer run: give one")
    agent = load_dreamer(ctx.run, ctx.cfg, ctx.spec, ctx.device, args.which)
    vision = dreamer_world(agent).vision
    store = EpisodeStore(ctx.run.episodes)
    x, cont, x_err, terminal = [], [], [], []
    for _, ep in store.iter_episodes(store.valid_indices()):
        feats, _ = vision.encode_episode(ep.observations, ep.actions, ctx.device)
        with torch.no_grad():
            f = torch.as_tensor(feats)
            cont.append(agent.wm.cont_prob(f).numpy())
            x_err.append(np.abs(agent.wm.codec.decode(f).numpy()[:, 0] - ep.observations[:, 0]))
        x.append(np.abs(ep.observations[:, 0]))
        terminal.append(np.concatenate([[False], ep.terminated]))
    xs, cs, es, ts = (np.concatenate(v) for v in (x, cont, x_err, terminal))
    print(f"{args.run_dir} (dreamer/{args.which}): {len(xs)} stored steps, {ts.sum()} terminal")
    print("| abs(x) | steps | terminal | P(continue) | at terminals | decoder x error |")
    print("|---|---|---|---|---|---|")
    for lo, hi in BANDS:
        m = (xs >= lo) & (xs < hi)
        if not m.any():
            continue
        mt = m & ts
        at_end = f"{cs[mt].mean():.3f}" if mt.any() else "—"
        print(f"| [{lo}, {hi}) | {m.sum()} | {mt.sum()} | {cs[m].mean():.3f} | {at_end} "
              f"| {es[m].mean():.3f} |")  # fmt: skip


if __name__ == "__main__":
    run_main(main)
