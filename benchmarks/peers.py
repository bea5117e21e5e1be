"""How fast two peer DreamerV3 implementations (SheepRL, RLlib) train on this host next to
`--method dreamer`, all on one math thread and configured to the sizes of our CartPole-v1
dreamer preset (read from the preset, so the three stay in step): gradient steps/s and env
steps/s of the acting agent, one markdown table with each peer's config beside it.

    .venv/bin/python benchmarks/peers.py                      # all four rows, about 3 minutes
    .venv/bin/python benchmarks/peers.py --only ours sheeprl --updates 60
    .venv/bin/python benchmarks/peers.py --sheeprl-python /elsewhere/bin/python

Each implementation runs in a fresh process of its own Python with OMP_NUM_THREADS=1 and
``torch.set_num_threads(1)``, one after the other. The peers are installed packages in venvs of
their own (never this project's .venv); a missing venv prints its install command in the row:

    python3.11 -m venv /work/peers/sheeprl-venv
    /work/peers/sheeprl-venv/bin/pip install torch==2.13.0
    /work/peers/sheeprl-venv/bin/pip install sheeprl
    python3.11 -m venv /work/peers/rllib-venv
    /work/peers/rllib-venv/bin/pip install torch==2.13.0
    /work/peers/rllib-venv/bin/pip install "ray[rllib]==2.60.0" pillow

What each row times (the first ``WARM_UP`` gradient steps of each are not counted):

* ours: `dreamer_speed.measure` (replay sampling plus `Dreamer.update`; acting: `act` plus
  `env.step` of one env, 500 steps), as shipped and again with ``dreamer.imag_last=0`` (the
  ours-all row: imagination from every posterior state, as the peers do).
* SheepRL: its own training loop (``sheeprl exp=dreamer_v3 ...``, run in-process through its
  Hydra entry point) after ``learning_starts`` random steps; a gradient step is one pass of its
  training block (batch sampling, target-critic update, ``train``), acting is its
  ``Time/env_interaction_time`` phase (player, replay add, a one-env SyncVectorEnv step).
* RLlib: ``algo.train()`` iterations of ``DreamerV3`` (torch, local learner and env runner); a
  gradient step is one replay sample plus one ``learner_group.update``, acting is
  ``env_runner.sample`` (module forward, connectors, env step) without the random prefill.
  Its EnvRunnerGroup puts its config in Ray's object store even with no remote runner, so a
  local Ray instance (``num_cpus=1``, no dashboard) runs beside it.
  RLlib sizes its nets only through ``model_size``: "XXS" gives GRU 128, MLP 128 x 1 layer, and
  the stochastic size (32 x 32) and the two-hot bins (255) are patched in its loaded modules to
  the preset's (the package's files are not changed).

The peers imagine from every one of the B*T posterior states of a batch (they cannot restrict
the starts); ours from the last ``imag_last`` of each window, as in the preset. The parameter
counts (world model, actor, critic; no target/EMA critic) agree to within 0.4%.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ENV_ID = "CartPole-v1"
WARM_UP = 3  # gradient steps not timed (first-call allocations, lazy inits)
ACT_WARM_UP = 5  # acting calls not timed
PEERS_DIR = Path("/work/peers")
INSTALL = {
    "sheeprl": "python3.11 -m venv {venv} && {venv}/bin/pip install torch==2.13.0 && "
    "{venv}/bin/pip install sheeprl",
    "rllib": "python3.11 -m venv {venv} && {venv}/bin/pip install torch==2.13.0 && "
    '{venv}/bin/pip install "ray[rllib]==2.60.0" pillow',
}
NAMES = {
    "ours": "ours (worldmodels)",
    "ours-all": "ours, all B*T starts (dreamer.imag_last=0)",
    "sheeprl": "SheepRL",
    "rllib": "RLlib",
}
RESULT = "PEERS-RESULT "


# ---------------------------------------------------------------- the workers (one per process)


def one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def worker_ours(sizes: dict[str, Any], updates: int, sets: tuple[str, ...] = ()) -> dict[str, Any]:
    """`dreamer_speed.measure` on one thread, plus the trained parameters (world model, actor,
    critic; not the slow critic)."""
    from importlib.metadata import version

    import dreamer_speed
    import torch

    import worldmodels.registry  # noqa: F401  (registers the dreamer config section)
    from worldmodels.config import parse_set, resolve
    from worldmodels.envs import probe
    from worldmodels.training.dreamer import Dreamer

    cfg = resolve(ENV_ID, [], {}, parse_set(["method=dreamer", *sets]))
    agent = Dreamer(cfg.section("dreamer"), probe(cfg.env), torch.device("cpu"))
    params = sum(p.numel() for m in (agent.wm, agent.actor, agent.critic) for p in m.parameters())
    r = dreamer_speed.measure(ENV_ID, 1, list(sets), updates)
    rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                         text=True, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    return {
        "version": f"worldmodels {version('worldmodels')} ({rev}), torch {torch.__version__}",
        "params": params,
        "grad_steps_s": r["grad_steps_s"],
        "act_steps_s": r["act_steps_s"],
        "timed_steps": updates,
        "seconds": updates / r["grad_steps_s"],
        "threads": [torch.get_num_threads()],
        "config": f"dreamer_speed.measure(threads=1), {ENV_ID} preset "
        + (" ".join(f"--set {s}" for s in sets) or "as shipped"),
    }


def worker_ours_all(sizes: dict[str, Any], updates: int) -> dict[str, Any]:
    """Ours imagining from every posterior state of the batch, as the peers do."""
    return worker_ours(sizes, updates, ("dreamer.imag_last=0",))


class Clock:
    """Durations of the timed calls: gradient steps (``steps``, each with its count) and
    acting calls (``acts``, each with its env steps)."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, int]] = []
        self.acts: list[tuple[float, int]] = []
        self.threads: set[int] = set()  # torch's math threads seen in the gradient steps

    def rates(self) -> dict[str, Any]:
        steps, acts = _after(self.steps, WARM_UP), _after(self.acts, ACT_WARM_UP)
        seconds, n = sum(s for s, _ in steps), sum(k for _, k in steps)
        act_s, act_n = sum(s for s, _ in acts), sum(k for _, k in acts)
        return {
            "grad_steps_s": n / seconds if seconds else math.nan,
            "act_steps_s": act_n / act_s if act_s else math.nan,
            "timed_steps": n,
            "seconds": seconds,
            "threads": sorted(self.threads),
        }


def _after(calls: list[tuple[float, int]], skip: int) -> list[tuple[float, int]]:
    """The calls after the first ``skip`` counted units."""
    out, seen = [], 0
    for s, k in calls:
        if seen >= skip:
            out.append((s, k))
        seen += k
    return out


def sheeprl_overrides(sizes: dict[str, Any], updates: int, logs: str) -> list[str]:
    ratio = sizes["train_ratio"] / (sizes["batch_size"] * sizes["seq_len"])  # per env step
    starts = 1024  # random steps first (its default); the replay content does not change speed
    total = starts + math.ceil((WARM_UP + updates) / ratio)
    return [
        "exp=dreamer_v3",
        "algo=dreamer_v3_XS",  # MLP 1 layer; every width set below
        "env=gym",
        f"env.id={ENV_ID}",
        "env.num_envs=1",
        "env.sync_env=True",
        "env.capture_video=False",
        "algo.cnn_keys.encoder=[]",
        "algo.mlp_keys.encoder=[state]",
        "algo.cnn_keys.decoder=[]",
        "algo.mlp_keys.decoder=[state]",
        f"algo.per_rank_batch_size={sizes['batch_size']}",
        f"algo.per_rank_sequence_length={sizes['seq_len']}",
        f"algo.replay_ratio={ratio}",
        f"algo.horizon={sizes['horizon']}",
        f"algo.gamma={sizes['gamma']}",
        f"algo.dense_units={sizes['hidden']}",
        f"algo.mlp_layers={sizes['layers']}",
        f"algo.world_model.recurrent_model.recurrent_state_size={sizes['deter']}",
        f"algo.world_model.transition_model.hidden_size={sizes['hidden']}",
        f"algo.world_model.representation_model.hidden_size={sizes['hidden']}",
        f"algo.world_model.stochastic_size={sizes['groups']}",
        f"algo.world_model.discrete_size={sizes['classes']}",
        f"algo.world_model.reward_model.bins={sizes['bins']}",
        f"algo.critic.bins={sizes['bins']}",
        f"algo.learning_starts={starts}",
        f"algo.total_steps={total}",
        "algo.run_test=False",
        "fabric.accelerator=cpu",
        "fabric.devices=1",
        "num_threads=1",
        "metric.log_level=0",
        "checkpoint.every=0",
        "checkpoint.save_last=False",
        "buffer.size=100000",
        "buffer.memmap=False",
        "buffer.checkpoint=False",
        "model_manager.disabled=True",
        f"log_root={logs}",
        f"hydra.run.dir={logs}/hydra",
    ]


def worker_sheeprl(sizes: dict[str, Any], updates: int) -> dict[str, Any]:
    """SheepRL's own DreamerV3 loop, its training block and env phase timed in place."""
    from importlib.metadata import version

    import sheeprl.algos.dreamer_v3.dreamer_v3 as dv3
    import torch
    from sheeprl.algos.dreamer_v3.agent import PlayerDV3
    from sheeprl.cli import run

    clock, params = Clock(), [0]
    build_agent, train = dv3.build_agent, dv3.train
    trains = [0]

    def counting_build(*args: Any, **kwargs: Any) -> Any:
        world_model, actor, critic, target_critic, player = build_agent(*args, **kwargs)
        params[0] = sum(p.numel() for m in (world_model, actor, critic) for p in m.parameters())
        return world_model, actor, critic, target_critic, player

    def counting_train(*args: Any, **kwargs: Any) -> None:
        train(*args, **kwargs)
        trains[0] += 1
        clock.threads.add(torch.get_num_threads())

    @contextlib.contextmanager
    def training_timer(*_: Any, **__: Any) -> Iterator[None]:
        before, t0 = trains[0], time.perf_counter()
        yield
        clock.steps.append((time.perf_counter() - t0, trains[0] - before))

    acting = [False]

    @contextlib.contextmanager
    def phase_timer(*_: Any, **__: Any) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        if acting[0]:
            clock.acts.append((time.perf_counter() - t0, 1))

    get_actions = PlayerDV3.get_actions

    def flagging_get_actions(self: Any, *args: Any, **kwargs: Any) -> Any:
        acting[0] = True  # the player acts from now on (after learning_starts)
        return get_actions(self, *args, **kwargs)

    dv3.build_agent, dv3.train = counting_build, counting_train
    dv3.training_timer, dv3.phase_timer = training_timer, phase_timer
    PlayerDV3.get_actions = flagging_get_actions  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(prefix="peers-sheeprl-") as logs:
        overrides = sheeprl_overrides(sizes, updates, logs)
        sys.argv = ["sheeprl", *overrides]
        with contextlib.redirect_stdout(sys.stderr):  # its config print and log lines
            run()
    shown = [o for o in overrides if not o.startswith(("log_root", "hydra.run"))]
    return {
        "version": f"sheeprl {version('sheeprl')}, torch {torch.__version__}",
        "params": params[0],
        **clock.rates(),
        "config": " ".join(shown),
    }


def worker_rllib(sizes: dict[str, Any], updates: int) -> dict[str, Any]:
    """RLlib's DreamerV3 ``algo.train()`` iterations, its learner updates and env-runner
    samples timed; sizes beyond ``model_size`` patched in its loaded modules."""
    import functools
    import logging

    import ray
    import ray.rllib.algorithms.dreamerv3.dreamerv3_catalog as catalog
    import ray.rllib.algorithms.dreamerv3.dreamerv3_rl_module as rl_module
    import ray.rllib.algorithms.dreamerv3.torch.dreamerv3_torch_learner as learner
    import ray.rllib.algorithms.dreamerv3.torch.models.components.representation_layer as rep
    import ray.rllib.algorithms.dreamerv3.torch.models.components.reward_predictor_layer as rpl
    import ray.rllib.algorithms.dreamerv3.utils as dutils
    import torch
    from ray.rllib.algorithms.dreamerv3 import DreamerV3Config
    from ray.rllib.core import DEFAULT_MODULE_ID

    model_size = "XXS"
    fixed = {
        "get_gru_units": dutils.get_gru_units(model_size),
        "get_dense_hidden_units": dutils.get_dense_hidden_units(model_size),
        "get_num_dense_layers": dutils.get_num_dense_layers(model_size),
    }
    want = {"get_gru_units": sizes["deter"], "get_dense_hidden_units": sizes["hidden"],
            "get_num_dense_layers": sizes["layers"]}  # fmt: skip
    if fixed != want:
        raise SystemExit(f"RLlib model_size {model_size} gives {fixed}, the preset {want}")

    def sized(value: int) -> Callable[..., int]:
        def get(model_size: str, override: int | None = None) -> int:
            return value if override is None else override

        return get

    for module in (dutils, catalog, rl_module, rep):
        for name, value in (("get_num_z_categoricals", sizes["groups"]),
                            ("get_num_z_classes", sizes["classes"])):  # fmt: skip
            if hasattr(module, name):
                setattr(module, name, sized(value))
    bins, layer_init = sizes["bins"], rpl.RewardPredictorLayer.__init__

    def binned_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["num_buckets"] = bins
        layer_init(self, *args, **kwargs)

    rpl.RewardPredictorLayer.__init__ = binned_init  # type: ignore[method-assign]
    learner.two_hot = functools.partial(learner.two_hot, num_buckets=bins)  # type: ignore[attr-defined]

    # its EnvRunnerGroup puts its config in the object store even with no remote runner, which
    # starts a local Ray instance; started here with the least it needs, stopped at the end
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    one_thread()
    config = (
        DreamerV3Config()
        .environment(ENV_ID)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .learners(num_learners=0)
        .training(
            model_size=model_size,
            training_ratio=sizes["train_ratio"],
            batch_size_B=sizes["batch_size"],
            batch_length_T=sizes["seq_len"],
            horizon_H=sizes["horizon"],
            gamma=sizes["gamma"],
        )
    )
    algo: Any = config.build_algo() if hasattr(config, "build_algo") else config.build()
    one_thread()
    clock = Clock()
    update, sample = algo.learner_group.update, algo.replay_buffer.sample
    env_sample = algo.env_runner.sample
    sampled = [0.0]

    def timed_sample(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = sample(*args, **kwargs)
        sampled[0] = time.perf_counter() - t0
        return out

    def timed_update(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = update(*args, **kwargs)
        clock.steps.append((time.perf_counter() - t0 + sampled[0], 1))
        clock.threads.add(torch.get_num_threads())
        return out

    def timed_env_sample(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = env_sample(*args, **kwargs)
        if not kwargs.get("random_actions"):
            clock.acts.append((time.perf_counter() - t0, sum(len(e) for e in out)))
        return out

    algo.learner_group.update = timed_update
    algo.replay_buffer.sample = timed_sample
    algo.env_runner.sample = timed_env_sample
    dreamer = algo.learner_group._learner.module[DEFAULT_MODULE_ID]
    params = sum(p.numel() for n, p in dreamer.named_parameters() if "_ema" not in n)
    for m in dreamer.modules():  # the patched sizes took
        if isinstance(m, rpl.RewardPredictorLayer):
            assert m.num_buckets == bins, m.num_buckets
        if isinstance(m, rep.RepresentationLayer):
            z = (m.num_categoricals, m.num_classes_per_categorical)
            assert z == (sizes["groups"], sizes["classes"]), z
    while len(clock.steps) < WARM_UP + updates:
        algo.train()
    algo.stop()
    ray.shutdown()
    return {
        "version": f"ray[rllib] {ray.__version__}, torch {torch.__version__}",
        "params": params,
        **clock.rates(),
        "config": (
            f"DreamerV3Config().environment({ENV_ID!r}).env_runners(num_env_runners=0, "
            f"num_envs_per_env_runner=1).learners(num_learners=0).training(model_size="
            f"{model_size!r}, training_ratio={sizes['train_ratio']}, batch_size_B="
            f"{sizes['batch_size']}, batch_length_T={sizes['seq_len']}, horizon_H="
            f"{sizes['horizon']}, gamma={sizes['gamma']}); patched: z {sizes['groups']}x"
            f"{sizes['classes']} (XXS: 32x32), two-hot bins {bins} (255)"
        ),
    }


WORKERS: dict[str, Callable[[dict[str, Any], int], dict[str, Any]]] = {
    "ours": worker_ours,
    "ours-all": worker_ours_all,
    "sheeprl": worker_sheeprl,
    "rllib": worker_rllib,
}


# ---------------------------------------------------------------- the driver


def preset_sizes() -> dict[str, Any]:
    import worldmodels.registry  # noqa: F401  (registers the dreamer config section)
    from worldmodels.config import parse_set, resolve

    dc = resolve(ENV_ID, [], {}, parse_set(["method=dreamer"])).section("dreamer")
    keys = ("batch_size", "seq_len", "deter", "groups", "classes", "hidden", "layers", "bins",
            "horizon", "imag_last", "train_ratio", "gamma")  # fmt: skip
    return {k: getattr(dc, k) for k in keys}


def run_worker(python: str, name: str, sizes: dict[str, Any], updates: int) -> dict[str, Any]:
    """One implementation in a fresh process on one math thread; its stderr passes through."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore", "RAY_DISABLE_USAGE_STATS": "1"}  # fmt: skip
    cmd = [python, __file__, "--worker", name, "--sizes", json.dumps(sizes),
           "--updates", str(updates)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}, no result (its stderr is above)"}
    return {**json.loads(lines[-1][len(RESULT) :]), "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(WORKERS), default=list(WORKERS))
    ap.add_argument("--updates", type=int, default=30, help="timed gradient steps of each")
    ap.add_argument("--sheeprl-python", default=str(PEERS_DIR / "sheeprl-venv/bin/python"))
    ap.add_argument("--rllib-python", default=str(PEERS_DIR / "rllib-venv/bin/python"))
    ap.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        one_thread()
        result = WORKERS[args.worker](json.loads(args.sizes), args.updates)
        print(RESULT + json.dumps(result), flush=True)
        return

    import hostspeed

    sizes = preset_sizes()
    host = hostspeed.measure()
    print(f"{ENV_ID}, dreamer preset sizes {sizes}; machine: {platform.machine()}, "
          f"{os.cpu_count()} cores; one math thread each; host now (hostspeed.py): "
          f"{host['sgemm_gflops']} GFLOPS, {host['python_loop_ms']} ms; command: "
          f"{' '.join([Path(sys.executable).name, *sys.argv])}", flush=True)  # fmt: skip
    pythons = {"ours": sys.executable, "ours-all": sys.executable,
               "sheeprl": args.sheeprl_python, "rllib": args.rllib_python}  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    for name in args.only:
        if not Path(pythons[name]).exists():
            venv = Path(pythons[name]).parent.parent
            results[name] = {"error": "not installed: " + INSTALL[name].format(venv=venv)}
            continue
        print(f"\n... {NAMES[name]}", file=sys.stderr, flush=True)
        results[name] = run_worker(pythons[name], name, sizes, args.updates)
    print("\n| implementation | version | parameters | gradient steps/s "
          "| env steps/s (acting) | seconds measured |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        if "error" in r:
            print(f"| {NAMES[name]} | {r['error']} | | | | |")
            continue
        print(f"| {NAMES[name]} | {r['version']} | {r['params']:,} | {r['grad_steps_s']:.2f} | "
              f"{r['act_steps_s']:.0f} | {r['seconds']:.1f} ({r['timed_steps']} steps; "
              f"process {r['wall_s']:.0f} s) |")  # fmt: skip
    threads = {NAMES[n]: r["threads"] for n, r in results.items() if "threads" in r}
    print(f"\nMath threads (torch.get_num_threads) in the timed gradient steps: {threads}")
    print("\nConfigs:")
    for name, r in results.items():
        if "config" in r:
            print(f"- {NAMES[name]}: `{r['config']}`")
    print(f"\nNote: ours imagines {sizes['horizon']} steps from the last {sizes['imag_last']} "
          f"steps of each window ({sizes['batch_size'] * sizes['imag_last']} starts); SheepRL "
          f"and RLlib cannot restrict the starts and imagine from all B*T = "
          f"{sizes['batch_size'] * sizes['seq_len']} (as the ours-all row does). Acting: ours "
          "and RLlib time the policy and one env step; SheepRL's phase also adds the step to "
          "its replay.")  # fmt: skip


if __name__ == "__main__":
    main()
