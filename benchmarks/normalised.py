"""PPO-normalised scores over many envs (the validation suite's aggregate): per env a return on
the scale where the random policy scores 0 and PPO's IQM over seeds 1, the IQM over every run on
every env with rliable's stratified-bootstrap interval, the envs where a method's IQM is at or
above PPO's, and rliable's performance profile (Agarwal et al. 2021). ``tables.py`` writes them
into the docs' results page; ``validation.py`` prints them after its runs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib
import numpy as np
from rliable import library as rly
from rliable import metrics, plot_utils

from worldmodels.evaluation.compare import BOOTSTRAP_REPS, iqm, seeded_bootstrap

matplotlib.use("Agg")
import matplotlib.pyplot as plt

Scores = dict[str, dict[str, dict[int, float]]]
"""env -> method -> seed -> the run's mean evaluation return."""


def scores_of(runs: Iterable[tuple[str, str, int, float]]) -> Scores:
    """The scores of runs given as (env, method, seed, mean evaluation return)."""
    out: Scores = {}
    for env, method, seed, score in runs:
        out.setdefault(env, {}).setdefault(method, {})[int(seed)] = float(score)
    return out


def normalised(score: float, random: float, ppo: float) -> float:
    """A return on the scale where the random policy scores 0 and PPO (its IQM) 1."""
    return (score - random) / (ppo - random)


def normalisable(scores: Scores, random: dict[str, float]) -> tuple[list[str], list[str]]:
    """The envs whose scores can be PPO-normalised (PPO's IQM above the random policy's score),
    and those that cannot (no PPO runs, or PPO no better than random)."""
    ok, left = [], []
    for env, by_method in scores.items():
        ppo = list(by_method.get("ppo", {}).values())
        (ok if ppo and iqm(ppo) > random[env] else left).append(env)
    return ok, left


def run_seeds(scores: Scores, env: str) -> set[int]:
    """The seeds every method has a run of on ``env``."""
    return set.intersection(*(set(by_seed) for by_seed in scores[env].values()))


def complete(scores: Scores, envs: list[str]) -> tuple[list[str], list[str]]:
    """Of ``envs``, those with runs on the largest seed set any of them has (the aggregate
    takes every run of those), and those with fewer seeds so far (left out of it, so that a
    new env's first seed does not shrink the aggregate to one run per env)."""
    seeds = {env: run_seeds(scores, env) for env in envs}
    full = max(seeds.values(), key=len, default=set())
    return [e for e in envs if seeds[e] >= full], [e for e in envs if not seeds[e] >= full]


def normalised_scores(
    scores: Scores, random: dict[str, float], envs: list[str]
) -> dict[str, np.ndarray]:
    """Per method, its PPO-normalised scores on ``envs`` as rliable takes them: a runs x envs
    array, the runs being the seeds the method has on every one of ``envs``."""
    out: dict[str, np.ndarray] = {}
    for method in dict.fromkeys(m for env in envs for m in scores[env]):
        per_env = [scores[env].get(method, {}) for env in envs]
        seeds = sorted(set.intersection(*(set(s) for s in per_env)))
        if not seeds:
            continue
        out[method] = np.array([
            [normalised(s[seed], random[env], iqm(list(scores[env]["ppo"].values())))
             for env, s in zip(envs, per_env, strict=True)]
            for seed in seeds
        ])  # fmt: skip
    return out


def aggregate_iqm(matrix: dict[str, np.ndarray]) -> dict[str, tuple[float, float, float]]:
    """Per method, the IQM over all its runs and envs with rliable's stratified-bootstrap 95%
    interval (2,000 resamples, a fixed seed): (point, low, high)."""

    def func(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x)])

    with seeded_bootstrap():
        points, cis = rly.get_interval_estimates(matrix, func, reps=BOOTSTRAP_REPS)
    return {m: (float(points[m][0]), float(cis[m][0, 0]), float(cis[m][1, 0])) for m in matrix}


def compared(scores: Scores, method: str = "dreamer", baseline: str = "ppo") -> list[str]:
    """The envs with runs of both ``method`` and ``baseline``."""
    return [env for env, by in scores.items() if by.get(method) and by.get(baseline)]


def at_or_above(scores: Scores, method: str = "dreamer", baseline: str = "ppo") -> list[str]:
    """The envs where ``method``'s IQM over seeds is at least ``baseline``'s."""
    return [
        env
        for env, by in scores.items()
        if by.get(method)
        and by.get(baseline)
        and iqm(list(by[method].values())) >= iqm(list(by[baseline].values()))
    ]


def draw_profile(matrix: dict[str, np.ndarray], path: Path, reps: int = BOOTSTRAP_REPS) -> Path:
    """rliable's performance profile of the PPO-normalised scores: per tau the fraction of runs
    (over all envs) scoring above it, with its stratified-bootstrap band (``reps`` resamples)."""
    values = np.concatenate([m.ravel() for m in matrix.values()])
    taus = np.linspace(min(0.0, values.min()), max(1.5, values.max()), 101)
    with seeded_bootstrap():
        profiles, cis = rly.create_performance_profile(matrix, taus, reps=reps)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xlabel = r"PPO-normalised score $\tau$ (random policy 0, PPO 1)"
    plot_utils.plot_performance_profiles(
        profiles, taus, performance_profile_cis=cis, ax=ax, xlabel=xlabel
    )
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.legend(loc="upper right")
    n_envs = next(iter(matrix.values())).shape[1]
    ax.set_title(f"Validation suite: {n_envs} envs, fraction of runs above each score")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
