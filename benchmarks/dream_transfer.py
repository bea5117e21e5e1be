"""Dreams that transfer: a learner this project did not write -- Stable-Baselines3's PPO with
its default hyperparameters -- trained only inside a finished run's dream
(``worldmodels/Dream-v0``), then scored in the real env through the same features
(``worldmodels/Real-v0``), beside its score in the dream: where the two part, the learner
exploits the model.

    .venv/bin/python benchmarks/dream_transfer.py --run benchmarks/runs/suite/CartPole-v1/dreamer_s5
    .venv/bin/python benchmarks/dream_transfer.py --run RUN --tau 0 0.5 1.0 1.5 --seeds 0 1 2
    .venv/bin/python benchmarks/dream_transfer.py --run RUN --start any --horizon 64
    .venv/bin/python benchmarks/dream_transfer.py --run ENSEMBLE_RUN --unknown 0.99
    .venv/bin/python benchmarks/dream_transfer.py --run RUN --learn-in real
    .venv/bin/python benchmarks/dream_transfer.py --run RUN --done-tau 0.5

Per run, dream setting (the Dream-v0 keyword arguments ``tau``, ``horizon``, ``done_mode``,
``start``, ``observation``, ``unknown``, ``done_tau``; the run's own where not given, kept
resolved) and learner seed: PPO("MlpPolicy", dream, seed) learns for ``--steps`` dream steps
(no real step), then plays 100 real episodes through Real-v0's view of the same kind -- the
reset seeds of the run's own evaluation (``worldmodels.seeding``, Stream.EVALUATE), which no
training episode of the run used -- and 100 dream episodes, deterministically. Each result
is kept as data in benchmarks/results/dream_transfer.json.gz (a result already there for the
same run, setting, seed and steps is read back, not made again, unless the run's weights
changed or ``--fresh``); the table over learner seeds (IQM with its 95% stratified-bootstrap
interval) is printed with the command beside it. One math thread.

``--learn-in real`` is the control: the same learner, for the same number of steps, in
``Real-v0`` (the real env seen through the same features; its episodes follow the env's own
random stream from the learner seed, never the evaluation stream) -- what this learner reaches
at this budget when the model is not in the way. Its row keeps the dream setting the dream
score was measured under, with ``learn_in: real``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import records
import torch

from worldmodels.data.rollout import EnvPool, run_batch
from worldmodels.dream import OBSERVATIONS, agent_action_space, observation_of, unnormalize
from worldmodels.evaluation.compare import bootstrap_ci, iqm, seeded_bootstrap
from worldmodels.seeding import Stream, reset_seeds

RESULTS = records.RESULTS / "dream_transfer.json.gz"
EPISODES = 100


class LearnerPolicy:
    """A learner acting in real envs on what Real-v0 would show it (``rollout.Policy``): the
    model state filtered by the run's world model, as the features or their decoding."""

    def __init__(self, world: Any, model: Any, observation: str):
        self.world, self.model, self.observation = world, model, observation
        self.scale = agent_action_space(world.spec)[1]

    def reset(self, n: int) -> Any:
        return self.world.initial(n)

    @torch.no_grad()
    def act(self, obs: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        z = self.world.observe(obs, state)
        shown = observation_of(self.world, z, state, self.observation)
        actions = unnormalize(
            np.asarray(self.model.predict(shown, deterministic=True)[0]), self.scale
        )
        _, state = self.world.step(z, torch.as_tensor(actions, device=self.world.device), state)
        return actions, state


def real_returns(run: Any, model: Any, seeds: list[int], observation: str) -> list[float]:
    """Returns of ``model``'s deterministic policy in the real env seen through the run's
    world model, one episode per reset seed, all stepped together (``rollout.run_batch``)."""
    pool = EnvPool(run.config.env)
    try:
        policy = LearnerPolicy(run.world, model, observation)
        return run_batch(pool, run.spec, policy, seeds).returns.tolist()
    finally:
        pool.close()


def dream_returns(run: Any, model: Any, how: dict[str, Any], episodes: int, seed: int) -> list:
    """Returns of the first episode of each of ``episodes`` dreams stepped together."""
    _, scale = agent_action_space(run.spec)
    dream = run.dream_vec_env(episodes, **how)
    feats, _ = dream.reset(seed=seed)
    returns, alive = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while alive.any():
        actions = unnormalize(np.asarray(model.predict(feats, deterministic=True)[0]), scale)
        feats, rewards, term, trunc, _ = dream.step(actions)
        returns += np.where(alive, rewards, 0.0)
        alive &= ~(term | trunc)
    return returns.tolist()


def dreamt(how: dict[str, Any]) -> dict[str, Any]:
    """The Dream-v0 keyword arguments of a kept setting (without where the learner learnt)."""
    return {k: v for k, v in how.items() if k != "learn_in"}


def learning_env(run_dir: Path, how: dict[str, Any]) -> Any:
    """Where the learner learns: the dream of setting ``how``, or (``learn_in: real``) the
    real env through the same view."""
    import gymnasium as gym

    if how.get("learn_in") == "real":
        return gym.make("worldmodels/Real-v0", run_dir=str(run_dir), observation=how["observation"])
    return gym.make("worldmodels/Dream-v0", run_dir=str(run_dir), **dreamt(how))


def learn(run_dir: Path, how: dict[str, Any], seed: int, steps: int) -> Any:
    """SB3's PPO with its default hyperparameters, ``steps`` steps in setting ``how``."""
    from stable_baselines3 import PPO

    torch.manual_seed(seed)
    model = PPO("MlpPolicy", learning_env(run_dir, how), seed=seed, verbose=0, device="cpu")
    model.learn(steps)
    return model


def transfer(
    run_dir: Path, how: dict[str, Any], seed: int, steps: int, weights: str
) -> dict[str, Any]:
    """One learner: trained in the dream (or, as the control, the real env), scored for real
    and in the dream; ``weights`` is the run's ``fingerprint``."""
    import worldmodels

    run = worldmodels.open_run(run_dir)
    start = time.perf_counter()
    model = learn(run_dir, how, seed, steps)
    trained = time.perf_counter() - start
    seeds = reset_seeds(run.config.seed, Stream.EVALUATE, 0, EPISODES)
    real = real_returns(run, model, seeds, how["observation"])
    dream_scores = dream_returns(run, model, dreamt(how), EPISODES, 10_000 + seed)
    return {
        "run": str(run_dir),
        "env": run.config.env.id,
        "how": how,
        "seed": seed,
        "dream_steps": steps,
        "real": float(np.mean(real)),
        "real_returns": real,
        "dream": float(np.mean(dream_scores)),
        "train_seconds": round(trained, 1),
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {platform.system()}",
        "run_fingerprint": weights,
    }


def fingerprint(run_dir: Path) -> str:
    """What the run's trained weights are (its checkpoint files' names and bytes): a result
    kept for a run directory is read back only for the same weights."""
    digest = hashlib.sha256()
    for path in sorted((run_dir / "checkpoints").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(run_dir)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def resolved(run_dir: Path, how: dict[str, Any]) -> dict[str, Any]:
    """The dream setting ``how`` gives on this run, every keyword argument named: what a
    result is kept under (a default that changes later does not change what it meant)."""
    import worldmodels

    dreaming = worldmodels.open_run(run_dir).dreaming(**how)
    start = "initial" if dreaming.initial_only else "any"
    named = {
        "tau": dreaming.temperature,
        "horizon": dreaming.horizon,
        "done_mode": dreaming.done_mode,
        "start": start,
        "observation": dreaming.observation,
    }
    if dreaming.unknown is not None:  # named only where set: earlier rows have no such key
        named["unknown"] = dreaming.unknown
    if dreaming.done_tau != 1.0:  # likewise
        named["done_tau"] = dreaming.done_tau
    if dreaming.filtered:  # likewise
        named["filtered"] = True
    return named


def setting(how: dict[str, Any]) -> str:
    """A resolved dream setting in a table cell."""
    if how.get("learn_in") == "real":
        return "learnt in the real env (Real-v0; the control)" + (
            ", decoded" if how["observation"] == "decoded" else ""
        )
    shown = f"τ {how['tau']:g}, {how['done_mode']}, {how['start']}, horizon {how['horizon']}"
    if how.get("done_tau") is not None:
        shown += f" at done τ {how['done_tau']:g}"
    if how.get("unknown") is not None:
        shown += f", ends past the {how['unknown']:g} quantile of disagreement"
    if how.get("filtered"):
        shown += ", filtered"
    return shown + (", decoded" if how["observation"] == "decoded" else "")


def tuning(run_dir: str) -> bool:
    """Whether a run's seed is a tuning seed (100 and up): dream settings are chosen there."""
    seed = re.search(r"_s(\d+)$", run_dir)
    return seed is not None and int(seed.group(1)) >= 100


def key(row: dict[str, Any]) -> tuple[str, str, int, int]:
    return row["run"], json.dumps(row["how"], sort_keys=True), row["seed"], row["dream_steps"]


def load(path: Path = RESULTS) -> list[dict[str, Any]]:
    """Every learner's result kept so far."""
    return records.kept_rows(path)


def keep(row: dict[str, Any], path: Path = RESULTS) -> list[dict[str, Any]]:
    """Add ``row`` to the kept results, replacing one of the same key; all of them."""
    return records.keep_row(path, row, key)


def table(rows: list[dict[str, Any]]) -> str:
    """One line per (run, setting, steps): the real and dream scores' IQM over learner seeds
    with the real score's 95% CI."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for row in rows:
        run, how, _, steps = key(row)
        groups.setdefault((run, how, steps), []).append(row)
    lines = [
        "| run | dream setting | dream steps | seeds | real IQM [95% CI] | dream IQM | train s |",
        "|---|---|---|---|---|---|---|",
    ]

    def order(item: tuple[tuple[str, str, int], list[dict[str, Any]]]) -> tuple:
        (run, how, steps), _ = item
        setting_of = json.loads(how)
        control = setting_of.get("learn_in") == "real"
        return tuning(run), run, control, setting_of["start"], setting_of["done_mode"], how, steps

    for (run, how, steps), group in sorted(groups.items(), key=order):
        real = [r["real"] for r in group]
        with seeded_bootstrap():
            low, high = bootstrap_ci(real) if len(real) > 1 else (real[0], real[0])
        dream = iqm([r["dream"] for r in group])
        secs = np.mean([r["train_seconds"] for r in group])
        lines.append(
            f"| {Path(run).name} ({group[0]['env']}{', tuning' if tuning(run) else ''}) | "
            f"{setting(json.loads(how))} | {steps:,} | "
            f"{len(group)} | "
            f"{iqm(real):.1f} [{low:.1f}, {high:.1f}] | {dream:.1f} | {secs:.0f} |"
        )
    return "\n".join(lines)


SECTION = """\
## Dreams that transfer

SB3's PPO with its default hyperparameters learns only inside a finished run's dream
(`worldmodels/Dream-v0`, no real step), then plays 100 real episodes through the same features
(`worldmodels/Real-v0`) on the run's own evaluation seeds, and 100 dream episodes; both
deterministically. A dream setting is Dream-v0's keyword arguments: the temperature τ, how the
continue head ends an episode (`sample`: a Bernoulli draw, at done τ where it is sharpened;
`threshold`: p > 0.5), where episodes start (`initial`: stored episode starts; `any`: any
stored state), the longest
episode, and what the learner sees (the controller features; "decoded": V's decoding of them
into the env's own observation space); per setting the IQM over learner seeds with the real
score's 95% bootstrap interval. A row "learnt in the real env" is the control: the same
learner, for the same number of steps, in `Real-v0` -- what it reaches at this budget when no
model is in the way.
Dream settings are chosen on runs of tuning seeds (100 and up) with learner seed 100 and
reported on other runs. Made by `python benchmarks/dream_transfer.py --run RUN_DIR [--tau ...]
[--done-mode ...] [--start ...] [--horizon ...] [--observation ...] [--learn-in real]
--seeds ...`, one math thread, on the machine the tables above name; the runs are the dreamer
runs of those tables and classic CartPole runs made for this (`worldmodels train --env
CartPole-v1 --seed S`, and with `--set memory.ensemble=5` where the run is named classic-ens,
with `--set vision.kind=identity --set memory.heads=next` where it is classic-next-identity;
dream-next-identity is `--method dream` with its CartPole preset, which sets those two, and
dream-it3-next that with `--set dream.iterations=3`);
dreamer-fn0.1 is a dreamer run with `--set dreamer.free_nats=0.1`, dreamer-z16 one with 16
categorical latents of 16 classes, `--set dreamer.groups=16 --set dreamer.classes=16`, where
the vector size has 8 of 8).
dreamer-avx2_s5 is the CartPole table's seed-5 command made again on a host whose CPU has
AVX2 and no bf16 (the table's run had AVX-512 and AMX): other kernels round otherwise, and it
is another run (500.0 at 10,000 real steps against 498.1 at 9,551); dreamer-avx512_s5 the same
command on a host with AVX-512 and no AMX (491.2 at 10,000), and dreamer-z16_s5 with 16 × 16
latents on that host (500.0 at 5,407).
"""


def section(rows: list[dict[str, Any]]) -> list[str]:
    """The results page's section on dream transfer (nothing without results)."""
    return [SECTION, table(rows) + "\n"] if rows else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, action="append", required=True, help="repeatable")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=50_000, help="dream steps per learner")
    ap.add_argument("--tau", nargs="+", type=float, default=[None])
    ap.add_argument("--horizon", type=int)
    ap.add_argument("--done-mode", choices=["threshold", "sample"])
    ap.add_argument("--start", choices=["initial", "any"])
    ap.add_argument("--observation", choices=list(OBSERVATIONS))
    ap.add_argument(
        "--unknown", type=float, help="end dream steps past this quantile of M's disagreement"
    )
    ap.add_argument("--done-tau", type=float, help="temperature of the sampled ends")
    ap.add_argument(
        "--filtered",
        action="store_const",
        const=True,
        help="each dream step seen through V's posterior of its decoding (Dreaming.filtered)",
    )
    ap.add_argument(
        "--learn-in",
        choices=["dream", "real"],
        default="dream",
        help="real: the control -- the learner learns in Real-v0 for the same steps",
    )
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="make results again that are kept for the run (e.g. a run trained again)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = load()
    made: list[dict[str, Any]] = []
    for run_dir in args.run:
        weights = fingerprint(run_dir)
        for tau in args.tau:
            how = {"tau": tau, "horizon": args.horizon, "done_mode": args.done_mode}
            how |= {"start": args.start, "observation": args.observation}
            how |= {"unknown": args.unknown, "done_tau": args.done_tau}
            how |= {"filtered": args.filtered}
            how = {k: v for k, v in how.items() if v is not None}
            how = resolved(run_dir, how)
            if args.learn_in == "real":
                how["learn_in"] = "real"
            for seed in args.seeds:
                want = (str(run_dir), json.dumps(how, sort_keys=True), seed, args.steps)
                kept = [r for r in rows if key(r) == want]
                if kept and not args.fresh and kept[0].get("run_fingerprint") in (None, weights):
                    made.append(kept[0])
                    continue
                row = transfer(run_dir, how, seed, args.steps, weights)
                print(
                    f"  {run_dir.name} {how} seed {seed}: real {row['real']:.1f}, "
                    f"dream {row['dream']:.1f}",
                    flush=True,
                )
                made.append(row)
                rows = keep(row)
    print(table(made))


if __name__ == "__main__":
    main()
