"""How fast `--method dreamer` trains on this machine: gradient steps/s (one world-model step
plus one actor-critic step in imagination), the share of a step each part takes, and env
steps/s of the acting agent, for an env's preset sizes.

    .venv/bin/python benchmarks/dreamer_speed.py             # CartPole-v1, 1 and 2 threads
    .venv/bin/python benchmarks/dreamer_speed.py --env Pendulum-v1 --threads 1
    .venv/bin/python benchmarks/dreamer_speed.py --threads 1 --compile   # eager, then compiled
    .venv/bin/python benchmarks/dreamer_speed.py --shared   # alone, then beside a busy process
    python benchmarks/dreamer_speed.py --env CarRacing-v3 --device cuda --preset gpu

The replay is filled with random-policy steps; the timings do not depend on what is learned.
``--shared`` measures each row twice: alone, then while one other CPU-bound process (a
spinning Python loop) holds a core, as a second seed or any other job does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator

import hostspeed
import numpy as np
import torch

import worldmodels.registry  # noqa: F401  (registers the dreamer config section)
from worldmodels.config import parse_set
from worldmodels.data.replay import SequenceReplay
from worldmodels.envs import action_to_env, make_env
from worldmodels.models.rssm import RssmState
from worldmodels.pipeline import resolve_new
from worldmodels.training.dreamer import Dreamer, fill_random, obs_dtype


def compile_networks(agent: Dreamer) -> None:
    """``torch.compile`` every network's forward (not the sampling between them, so the random
    numbers are drawn as in eager mode). ``Module.compile()`` left these calls eager here (no
    graph captured, torch 2.13), so each ``forward`` is replaced."""
    wm, rssm = agent.wm, agent.wm.rssm
    # every nn.Sequential shares one forward's code, whose compiled versions dynamo caps at 8
    torch._dynamo.config.recompile_limit = 64
    for net in (agent.actor.net, agent.critic, agent.slow_critic, wm.codec.encoder,
                wm.codec.decoder, wm.reward, wm.cont, rssm.img_in, rssm.gru, rssm.prior_net,
                rssm.post_net):  # fmt: skip
        net.forward = torch.compile(net.forward)  # type: ignore[method-assign]


CPU = torch.device("cpu")


@contextlib.contextmanager
def load(busy: bool) -> Iterator[None]:
    """With ``busy``, one other CPU-bound process (a spinning Python loop) runs meanwhile."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def clock(device: torch.device) -> float:
    """Seconds now, after the device's queued work has finished (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def measure(
    env_id: str,
    threads: int,
    sets: list[str],
    updates: int,
    compiled: bool = False,
    presets: tuple[str, ...] = (),
    device: torch.device = CPU,
    fill: int = 4000,
) -> dict[str, float]:
    torch.set_num_threads(threads)
    # as a run gets it: an env with no entry of its own sized by its observation kind
    cfg, spec = resolve_new(env_id, list(presets), {}, parse_set(["method=dreamer", *sets]))
    dc = cfg.section("dreamer")
    torch.manual_seed(0)
    agent = Dreamer(dc, spec, device)
    if compiled:
        compile_networks(agent)
    gamma = None if dc.repval_return == "lambda" else dc.gamma  # Monte Carlo replay values
    replay = SequenceReplay(fill + 1000, spec.obs_shape, obs_dtype(spec), spec.action_dim, gamma)
    rng = np.random.default_rng(0)
    env = make_env(cfg.env)
    fill_random(agent, env, replay, rng, fill)
    t0 = clock(device)
    for i in range(3):  # warm-up (and compilation)
        agent.update(replay.sample(rng, dc.batch_size, dc.seq_len), i)
    warm_up = clock(device) - t0
    t0 = clock(device)
    for i in range(updates):
        agent.update(replay.sample(rng, dc.batch_size, dc.seq_len), i)
    per_update = (clock(device) - t0) / updates
    # the world model's step alone (forward, backward, optimiser)
    t0 = clock(device)
    for _ in range(updates):
        sample = replay.sample(rng, dc.batch_size, dc.seq_len)
        data = {k: torch.as_tensor(v, device=device) for k, v in sample.items()}
        with agent.autocast():
            loss = agent.wm.loss(data).total
        agent.opts["model"].zero_grad()
        loss.backward()
        agent.opts["model"].step()
    model_part = (clock(device) - t0) / updates
    # the imagination alone (H prior steps of the actor from every posterior state the update
    # imagines from: the last imag_last of each window, or all)
    with agent.autocast():
        starts = agent.wm.loss(data).states.detach()
    last = slice(-dc.imag_last if dc.imag_last > 0 else None, None)
    flat = RssmState(starts.h[:, last].flatten(0, 1), starts.z[:, last].flatten(0, 1))
    t0 = clock(device)
    for _ in range(updates):
        with agent.autocast():
            agent.imagine(flat)
    imagine_part = (clock(device) - t0) / updates
    state = agent.initial(1)
    obs, _ = env.reset(seed=1)
    t0, steps = time.perf_counter(), 0
    while steps < 500:
        action, state = agent.act(obs[None], state, np.array([steps == 0]), mode=False)
        obs, _, term, trunc, _ = env.step(action_to_env(action[0], spec))
        steps += 1
        if term or trunc:
            obs, _ = env.reset()
    acting = steps / (time.perf_counter() - t0)
    env.close()
    ratio_updates = dc.train_ratio / (dc.batch_size * dc.seq_len)
    return {
        "warm_up_s": warm_up,
        "grad_steps_s": 1 / per_update,
        "model_share": model_part / per_update,
        "imagine_share": imagine_part / per_update,
        "act_steps_s": acting,
        "train_env_steps_s": 1 / (ratio_updates * per_update + 1 / acting),
        "budget_min": dc.total_steps * (ratio_updates * per_update + 1 / acting) / 60,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--updates", type=int, default=30)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument(
        "--preset",
        action="append",
        default=[],
        dest="presets",
        help="named presets stacked on the env's (gpu: DreamerV3's S size)",
    )
    ap.add_argument(
        "--shared", action="store_true", help="also measure beside one CPU-bound process"
    )
    ap.add_argument("--fill", type=int, default=4000, help="random steps in the replay")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: bf16 autocast as in training (dreamer.bf16)")  # fmt: skip
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also measure with torch.compile on every network's forward",
    )
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but no CUDA GPU is available")
    host = hostspeed.measure()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU only"
    sizes = " ".join([*(f"--preset {p}" for p in args.presets), *args.sets]) or "(as shipped)"
    print(f"{args.env}, dreamer preset {sizes}; machine: {platform.machine()}, "
          f"{os.cpu_count()} cores, {where}, torch {torch.__version__}; host now (hostspeed.py): "
          f"{host['sgemm_gflops']} GFLOPS, {host['python_loop_ms']} ms\n")  # fmt: skip
    print("| math threads | networks | first 3 updates (s) | gradient steps/s "
          "| world-model share of a step | imagination share "
          "| acting env steps/s | training env steps/s (train_ratio) | minutes for "
          "total_steps | beside |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    modes = [False, True] if args.compile else [False]
    loads = [False, True] if args.shared else [False]
    for threads, compiled, busy in ((t, c, b) for t in args.threads for c in modes for b in loads):
        with load(busy):
            r = measure(args.env, threads, args.sets, args.updates, compiled,
                        tuple(args.presets), device, args.fill)  # fmt: skip
        print(
            f"| {threads} | {'torch.compile' if compiled else 'eager'} | {r['warm_up_s']:.1f} | "
            f"{r['grad_steps_s']:.2f} | {r['model_share']:.0%} | "
            f"{r['imagine_share']:.0%} | "
            f"{r['act_steps_s']:.0f} | {r['train_env_steps_s']:.1f} | {r['budget_min']:.1f} | "
            f"{'one busy process' if busy else 'nothing'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
