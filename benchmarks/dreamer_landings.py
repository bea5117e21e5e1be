"""What a LunarLander dreamer run's world model believes about a landing it has never made:
gymnasium's own heuristic lander flies ``--episodes`` real episodes (it lands nearly every
time; each decision held for the run's ``env.frame_skip`` frames), and the run's RSSM reads
them. Per episode, at the first leg contact (+10 per leg) and at the final rest (+100,
terminal): the real reward against the reward head's, and the continue
head's P(continue); then, from ``--lead`` steps before the first leg contact, the prior
imagines open loop with the heuristic's real actions up to ``--lead`` steps past it, the
imagination the actor learns from: its summed reward against the real one and its lowest
P(continue). A model that predicts a crash at a soft touchdown steers its actor away from the
ground. With ``--own`` it reads the run's own stored landings instead (terminals with +100):
the reward and continue heads at the last step and the reward head over the steps before it.
With ``--tipped`` it reads the run's crashes that came after a leg had touched down (the lander
tipped over or slid off on the ground): from the first contact the prior imagines open loop to
the crash twice, once with the real actions and once doing nothing, and prints the imagined
reward sums and lowest P(continue) of each. A model that sees no difference lets its actor fire
the side engines on the ground. With ``--fidget`` it reads the run's episodes cut at the time
limit after both legs were down (the actor fired its engines on the ground instead of resting,
and Box2D never put the lander to sleep for the +100): from that first touchdown the prior
imagines ``--lead`` steps open loop with the real actions and with "nothing", and prints each
one's imagined return (the reward summed with the run's gamma times the continue head, plus the
critic's value at the end), its lowest P(continue), and the actor's P(nothing) there.

    .venv/bin/python benchmarks/dreamer_landings.py benchmarks/runs/suite/LunarLander-v3/dreamer_s0

One math thread; the run's ``dreamer/last`` checkpoint (``--which best`` for the best).
"""

from __future__ import annotations

import argparse
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.box2d.lunar_lander import heuristic
from torch import Tensor

import worldmodels.methods  # noqa: F401  (registers the dreamer config section)
from worldmodels.data.store import EpisodeStore
from worldmodels.errors import UserError, run_main
from worldmodels.models.rssm import RssmState
from worldmodels.pipeline import open_run
from worldmodels.training.dreamer import dreamer_world, load_dreamer


def heuristic_episode(seed: int, skip: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """observations [T+1, 8], actions [T], rewards [T] (each decision's action held ``skip``
    frames, its rewards summed, as the run's frame skip does), and whether it terminated."""
    env = gym.make("LunarLander-v3")
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], []
    while True:
        a, total, done, term = int(heuristic(env.unwrapped, obs)), 0.0, False, False
        for _ in range(skip):
            obs, r, term, trunc, _ = env.step(a)
            total += float(r)
            done = bool(term or trunc)
            if done:
                break
        observations.append(obs)
        actions.append(a)
        rewards.append(total)
        if done:
            env.close()
            return np.stack(observations), np.asarray(actions), np.asarray(rewards), term


def own_landings(ctx: Any, vision: Any, wm: Any, before: int) -> None:
    """The run's stored landings read by its own model, one row each."""
    store = EpisodeStore(ctx.run.episodes)
    print(f"| episode | length | last reward: real / model | P(continue) at the last step "
          f"| reward over the {before} steps before: real / model (mean) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for i in store.valid_indices():
        ep = store.read(i)
        if not (np.asarray(ep.terminated)[-1] and ep.rewards[-1] > 0):
            continue
        f = torch.as_tensor(vision.encode_episode(ep.observations, ep.actions, ctx.device)[0])
        with torch.no_grad():
            r_hat, c_hat = wm.reward_mean(f).numpy()[1:], wm.cont_prob(f).numpy()[1:]
        print(f"| {i} | {len(ep.rewards)} | {ep.rewards[-1]:.1f} / {r_hat[-1]:.1f} | "
              f"{c_hat[-1]:.3f} | {np.mean(ep.rewards[-before - 1 : -1]):.1f} / "
              f"{np.mean(r_hat[-before - 1 : -1]):.1f} |")  # fmt: skip


def open_loop(
    wm: Any, vision: Any, start: Tensor, actions: np.ndarray
) -> tuple[list[float], list[float], Tensor]:
    """Open loop from one posterior feature [F] with ``actions`` -> (the reward head's rewards,
    the continue head's P(continue), the last imagined feature [1, F])."""
    d = wm.rssm.deter
    state = RssmState(start[None, :d], start[None, d:])
    act_feats = vision.action_features(torch.as_tensor(actions))
    rewards, conts = [], []
    with torch.no_grad():
        for k in range(len(actions)):
            state, logits = wm.rssm.img_step(state, act_feats[k : k + 1])
            state = RssmState(state.h, wm.rssm.sample(logits, mode=True))
            rewards.append(float(wm.reward_mean(state.feat())[0]))
            conts.append(float(wm.cont_prob(state.feat())[0]))
    return rewards, conts, state.feat()


def imagine(wm: Any, vision: Any, start: Tensor, actions: np.ndarray) -> tuple[float, float]:
    """Open loop from one posterior feature [F] with ``actions`` -> (reward sum, min P(cont))."""
    rewards, conts, _ = open_loop(wm, vision, start, actions)
    return sum(rewards), min(conts)


def discounted(agent: Any, vision: Any, start: Tensor, actions: np.ndarray) -> tuple[float, float]:
    """Open loop -> (the imagined return: rewards discounted by gamma times P(continue), the
    critic's value at the end as the bootstrap; min P(continue))."""
    rewards, conts, last = open_loop(agent.wm, vision, start, actions)
    total, weight = 0.0, 1.0
    for r, c in zip(rewards, conts, strict=True):
        total += weight * r
        weight *= agent.dc.gamma * c
    with torch.no_grad():
        total += weight * float(agent.twohot.mean(agent.critic(last))[0])
    return total, min(conts)


def own_fidgets(ctx: Any, agent: Any, vision: Any, wm: Any, lead: int) -> None:
    """The run's episodes cut after both legs were down, one row each."""
    store = EpisodeStore(ctx.run.episodes)
    print(f"| episode | both legs down at | actions after (0/1/2/3) | real reward after "
          f"| {lead} steps imagined, real actions: return / min P(continue) "
          f"| nothing: return / min P(continue) | actor's P(nothing) there |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for i in store.valid_indices():
        ep = store.read(i)
        obs, acts = np.asarray(ep.observations), np.asarray(ep.actions)
        down = np.flatnonzero(obs[1:, 6:8].min(axis=1) > 0.5)
        if np.asarray(ep.terminated)[-1] or not len(down):
            continue
        t = int(down[0]) + 1  # the observation index of the touchdown
        if t + lead > len(acts):
            continue
        f = torch.as_tensor(vision.encode_episode(ep.observations, ep.actions, ctx.device)[0])
        real = discounted(agent, vision, f[t], acts[t : t + lead])
        rest = discounted(agent, vision, f[t], np.zeros_like(acts[t : t + lead]))
        with torch.no_grad():
            p_none = float(agent.actor.dist(f[t : t + 1]).probs[0, 0])  # type: ignore[attr-defined]
        counts = "/".join(str(c) for c in np.bincount(acts[t:], minlength=4))
        print(f"| {i} | {t} | {counts} | {ep.rewards[t:].sum():.1f} | {real[0]:.1f} / "
              f"{real[1]:.3f} | {rest[0]:.1f} / {rest[1]:.3f} | {p_none:.3f} |")  # fmt: skip


def own_tipovers(ctx: Any, vision: Any, wm: Any) -> None:
    """The run's stored crashes after a leg touched down, one row each (actions: 0 nothing,
    1 left engine, 2 main, 3 right)."""
    store = EpisodeStore(ctx.run.episodes)
    print("| episode | first contact | crash | actions from contact (0/1/2/3) | real reward sum "
          "| imagined, real actions: sum / min P(continue) | imagined, nothing: sum / min "
          "P(continue) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for i in store.valid_indices():
        ep = store.read(i)
        obs, acts = np.asarray(ep.observations), np.asarray(ep.actions)
        legs = np.flatnonzero(obs[1:, 6:8].max(axis=1) > 0)
        if not (np.asarray(ep.terminated)[-1] and ep.rewards[-1] < 0 and len(legs)):
            continue
        t = int(legs[0]) + 1  # the observation index of the first contact
        if t >= len(acts):
            continue  # the contact was the crash
        f = torch.as_tensor(vision.encode_episode(ep.observations, ep.actions, ctx.device)[0])
        real = imagine(wm, vision, f[t], acts[t:])
        rest = imagine(wm, vision, f[t], np.zeros_like(acts[t:]))
        counts = "/".join(str(c) for c in np.bincount(acts[t:], minlength=4))
        print(f"| {i} | {t} | {len(acts)} | {counts} | {ep.rewards[t:].sum():.1f} "
              f"| {real[0]:.1f} / {real[1]:.3f} | {rest[0]:.1f} / {rest[1]:.3f} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--which", choices=["last", "best"], default="last")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--lead", type=int, default=15)
    ap.add_argument("--own", action="store_true", help="the run's own stored landings")
    ap.add_argument("--tipped", action="store_true",
                    help="the run's own crashes after a leg touched down")  # fmt: skip
    ap.add_argument("--fidget", action="store_true",
                    help="the run's own episodes cut after both legs were down")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(1)
    ctx = open_run(args.run_dir, device="cpu", progress=False, reads=True, writes=False)
    if ctx.cfg.env.id != "LunarLander-v3" or ctx.cfg.method != "dreamer":
        raise UserError(f"{args.run_dir} is not a LunarLander-v3 dreamer run: give one")
    agent = load_dreamer(ctx.run, ctx.cfg, ctx.spec, ctx.device, args.which)
    vision, wm = dreamer_world(agent).vision, agent.wm
    if args.own:
        print(f"{args.run_dir} (dreamer/{args.which}): the run's own landings")
        own_landings(ctx, vision, wm, before=5)
        return
    if args.tipped:
        print(f"{args.run_dir} (dreamer/{args.which}): the run's crashes after touching down")
        own_tipovers(ctx, vision, wm)
        return
    if args.fidget:
        print(f"{args.run_dir} (dreamer/{args.which}): the run's episodes cut on the ground")
        own_fidgets(ctx, agent, vision, wm, args.lead)
        return
    print(f"{args.run_dir} (dreamer/{args.which}): gymnasium's heuristic lander, "
          f"seeds 0-{args.episodes - 1}; imagination from {args.lead} steps before the first "
          "leg contact to as many after it, with the real actions")  # fmt: skip
    print(
        "| seed | return | contact step | reward there: real / model | rest: real / model "
        "| P(continue) at rest | imagined reward sum: real / model | min P(continue) imagined |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for seed in range(args.episodes):
        obs, acts, rews, landed = heuristic_episode(seed, max(1, ctx.cfg.env.frame_skip))
        feats, _ = vision.encode_episode(obs, acts, ctx.device)
        f = torch.as_tensor(feats)
        with torch.no_grad():
            r_hat = wm.reward_mean(f).numpy()[1:]  # step t+1 holds r_t
            c_hat = wm.cont_prob(f).numpy()[1:]
        legs = np.flatnonzero(obs[1:, 6:8].max(axis=1) > 0)
        if not len(legs):
            print(f"| {seed} | {rews.sum():.1f} | (no leg contact) | | | | | |")
            continue
        t = int(legs[0])
        rest = (f"{rews[-1]:.1f} / {r_hat[-1]:.1f}", f"{c_hat[-1]:.3f}") if landed else ("—", "—")
        lo, hi = max(t - args.lead, 0), min(t + args.lead, len(acts))
        imag_r, imag_c, _ = open_loop(wm, vision, f[lo], acts[lo:hi])
        print(f"| {seed} | {rews.sum():.1f} | {t} | {rews[t]:.1f} / {r_hat[t]:.1f} | {rest[0]} "
              f"| {rest[1]} | {rews[lo:hi].sum():.1f} / {sum(imag_r):.1f} "
              f"| {min(imag_c):.3f} |")  # fmt: skip


if __name__ == "__main__":
    run_main(main)
