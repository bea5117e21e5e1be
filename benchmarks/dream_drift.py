"""Where a dream parts from reality under one policy: a learner trained only in a run's dream
(as ``dream_transfer.py`` trains it) acts in the real env and in the dream, and per observation
feature the mean over episodes at chosen steps is printed for both, the real one from the
env's own observations and the dream's from V's decoding of the model state. A feature whose
real mean moves while the dream's stays is a slow mode of the env the model does not carry
forward: the learner never sees its consequence in the dream, and reality ends its episodes
there.

    .venv/bin/python benchmarks/dream_drift.py --run runs/dreamer-avx2_s5 --seed 3

The real episodes use the run's own evaluation reset seeds (``Stream.EVALUATE``); the dream
episodes start from the run's stored episode starts and run for the longest real episode's
length, not ended by the continue head (its probability is printed beside them), so that a
step's mean is over the same number of dreams at every step. One math thread; vector
observations only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dream_transfer import LearnerPolicy, learn, resolved

from worldmodels.data.rollout import action_to_env
from worldmodels.dream import agent_action_space, dream_actions, observation_of, unnormalize
from worldmodels.seeding import Stream, reset_seeds


def real_paths(run: Any, model: Any, seeds: list[int], observation: str) -> list[np.ndarray]:
    """Each real episode's observations [T + 1, D] under the learner's deterministic policy."""
    import gymnasium as gym

    policy = LearnerPolicy(run.world, model, observation)
    paths = []
    for seed in seeds:
        env = gym.make(run.config.env.id)
        obs, _ = env.reset(seed=int(seed))
        state, path, done = policy.reset(1), [obs], False
        while not done:
            actions, state = policy.act(obs[None].astype(np.float32), state)
            obs, _, term, trunc, _ = env.step(action_to_env(actions[0], run.spec))
            path.append(obs)
            done = term or trunc
        env.close()
        paths.append(np.asarray(path, dtype=np.float64))
    return paths


@torch.no_grad()
def dream_paths(
    run: Any, model: Any, how: dict[str, Any], episodes: int, steps: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Decoded dream observations [steps + 1, N, D] and the continue head's end probability
    [steps, N] under the learner's deterministic policy, from the run's episode starts."""
    world = run.world
    _, scale = agent_action_space(run.spec)
    dream = run.dream_vec_env(episodes, **(how | {"start": "initial", "horizon": steps}))
    dream.reset(seed=seed)
    z, state = dream.core.z, dream.core.state
    generator = torch.Generator().manual_seed(seed)
    decoded, ends = [world.decoded(z).float().numpy()], []
    for _ in range(steps):
        shown = observation_of(world, z, state, how["observation"])
        actions = unnormalize(np.asarray(model.predict(shown, deterministic=True)[0]), scale)
        act = dream_actions(run.spec, actions, episodes)
        out = world.dream_step(z, act, state, how["tau"], generator)
        z, state = out.z, out.state
        decoded.append(world.decoded(z).float().numpy())
        ends.append(out.done_prob.float().numpy())
    return np.asarray(decoded, dtype=np.float64), np.asarray(ends, dtype=np.float64)


def table(real: list[np.ndarray], dream: np.ndarray, ends: np.ndarray, at: list[int]) -> str:
    """Per feature and step: the real mean (episodes still running) beside the dream's."""
    lines = [
        "| step | real episodes running | "
        + " | ".join(f"feature {i}: real / dream" for i in range(dream.shape[2]))
        + " | dream P(end) |",
        "|---|---|" + "---|" * dream.shape[2] + "---|",
    ]
    for t in at:
        running = [p[t] for p in real if len(p) > t]
        cells = []
        for i in range(dream.shape[2]):
            real_mean = np.mean([r[i] for r in running]) if running else float("nan")
            cells.append(f"{real_mean:+.2f} / {dream[min(t, len(dream) - 1), :, i].mean():+.2f}")
        p_end = np.median(ends[min(t, len(ends)) - 1]) if t else float("nan")
        lines.append(f"| {t} | {len(running)} | " + " | ".join(cells) + f" | {p_end:.4f} |")
    last = np.asarray([p[-1] for p in real])
    lines.append(
        f"| real last step (mean length {np.mean([len(p) - 1 for p in real]):.1f}) | "
        f"{len(real)} | "
        + " | ".join(
            f"{last[:, i].mean():+.2f} (|·| {np.abs(last[:, i]).mean():.2f})"
            for i in range(last.shape[1])
        )
        + " | |"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0, help="the learner's seed")
    ap.add_argument("--steps", type=int, default=50_000, help="dream steps the learner learns")
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--at", nargs="+", type=int, default=[0, 25, 50, 100, 150, 200, 300])
    args = ap.parse_args()
    torch.set_num_threads(1)
    import worldmodels

    run = worldmodels.open_run(args.run)
    if run.spec.obs_kind != "vector":
        raise SystemExit(f"dream_drift.py: {args.run} has pixel observations; vectors only")
    how = resolved(args.run, {})
    model = learn(args.run, how, args.seed, args.steps)
    seeds = reset_seeds(run.config.seed, Stream.EVALUATE, 0, args.episodes)
    real = real_paths(run, model, seeds, how["observation"])
    longest = max(len(p) for p in real) - 1
    dream, ends = dream_paths(run, model, how, args.episodes, longest, 10_000 + args.seed)
    print(
        f"{args.run.name}: learner seed {args.seed}, {args.steps:,} dream steps ({how}); "
        f"real episodes last {np.mean([len(p) - 1 for p in real]):.1f} steps on average "
        f"({args.episodes} episodes, one math thread)\n"
        f"command: python benchmarks/dream_drift.py --run {args.run} --seed {args.seed}"
    )
    print(table(real, dream, ends, [t for t in args.at if t <= longest]))


if __name__ == "__main__":
    main()
