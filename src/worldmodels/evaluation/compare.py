"""``worldmodels compare RUN_DIR...``: one table over runs of one env -- per method (and
planner), the mean return over seeds ± the sample std (ddof 1), a 95% confidence interval
(Student's t over the per-seed means), the interquartile mean with a stratified-bootstrap 95%
interval and the probability of improvement over PPO with its interval (``rliable``, the
estimators of Agarwal et al., "Deep RL at the Edge of the Statistical Precipice"), real env
steps, training wall time, and the real env steps at which the learning curve first reached the
env's solved threshold -- plus a figure of return vs real env steps (median over seeds, min-max
band) and a performance profile (the fraction of runs scoring above each return). Runs of
several envs are grouped by env, and said so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from rliable import library, metrics, plot_utils
from scipy import stats

from worldmodels.errors import UserError
from worldmodels.runs import RunDir, atomic_write_bytes, atomic_write_json

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@dataclass
class RunResult:
    root: Path
    env: str
    method: str
    seed: int
    episodes: int
    seed_offset: int
    mean_return: float
    real_env_steps: int
    wall_seconds: float
    threshold: float | None
    curve: list[tuple[int, float]]


def load_run(path: Path) -> RunResult:
    run = RunDir(path)
    if not run.has_config():
        raise UserError(f"{path} is not a run directory (no config.yaml)")
    if not run.eval_path.exists():
        raise UserError(
            f"{path} has no eval.json; produce it with `worldmodels evaluate --run-dir {path}`"
        )
    cfg = run.load_config()
    result = json.loads(run.eval_path.read_text())
    spec = json.loads(run.spec_path.read_text()) if run.spec_path.exists() else {}
    method = result.get("method", cfg.method)
    if result.get("planner"):
        method = f"{method} + {result['planner']} planner"
    return RunResult(
        root=path,
        env=result["env"],
        method=method,
        seed=cfg.seed,
        episodes=int(result["episodes"]),
        seed_offset=cfg.evaluate.seed_offset,
        mean_return=float(result["mean_return"]),
        real_env_steps=int(result["real_env_steps"]),
        wall_seconds=float(result.get("wall_seconds", math.nan)),
        threshold=spec.get("reward_threshold"),
        curve=run.curve(),
    )


def steps_to_threshold(curve: list[tuple[int, float]], threshold: float | None) -> int | None:
    """Real env steps at the first curve point at or above the threshold (None: never)."""
    if threshold is None:
        return None
    return next((s for s, r in curve if r >= threshold), None)


def confidence_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean; (nan, nan) with fewer than two values."""
    if len(values) < 2:
        return math.nan, math.nan
    mean, sem = float(np.mean(values)), float(stats.sem(values))
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1)) * sem
    return mean - half, mean + half


BOOTSTRAP_REPS = 2000


@contextmanager
def seeded_bootstrap(seed: int = 0) -> Iterator[None]:
    """rliable resamples with NumPy's global generator (its ``random_state`` argument does
    not reach the resampling): seed it for reproducible intervals, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def iqm(values: list[float]) -> float:
    """Interquartile mean over seeds (rliable's ``aggregate_iqm``: 25% cut each side)."""
    return float(metrics.aggregate_iqm(np.asarray(values, dtype=float)[:, None]))


def bootstrap_ci(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """rliable's stratified percentile bootstrap interval of the IQM over seeds (2,000
    resamples, a fixed seed); (nan, nan) with fewer than two values, the value itself when all
    are equal."""
    if len(values) < 2 or len(set(values)) < 2:
        return (math.nan, math.nan) if len(values) < 2 else (values[0], values[0])
    scores = {"x": np.asarray(values, dtype=float)[:, None]}
    with seeded_bootstrap():
        _, ci = library.get_interval_estimates(
            scores,
            lambda x: np.array([metrics.aggregate_iqm(x)]),
            reps=BOOTSTRAP_REPS,
            confidence_interval_size=level,
        )
    return float(ci["x"][0, 0]), float(ci["x"][1, 0])


def improvement(values: list[float], baseline: list[float]) -> tuple[float, float, float]:
    """P(a run of ``values`` scores above a run of ``baseline``) (rliable's probability of
    improvement, ties count half) with its stratified-bootstrap 95% interval; the interval is
    nan with fewer than two runs on either side."""
    x = np.asarray(values, dtype=float)[:, None]
    y = np.asarray(baseline, dtype=float)[:, None]
    point = float(metrics.probability_of_improvement(x, y))
    if len(values) < 2 or len(baseline) < 2:
        return point, math.nan, math.nan
    with seeded_bootstrap():
        _, ci = library.get_interval_estimates(
            {"xy": (x, y)},
            lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
            reps=BOOTSTRAP_REPS,
        )
    return point, float(ci["xy"][0, 0]), float(ci["xy"][1, 0])


def plot_profile(env: str, rows: list[dict[str, Any]], path: Path) -> bool:
    """The performance profile: for each return tau, the fraction of a method's runs scoring
    above it, with rliable's stratified-bootstrap band."""
    scores = {r["method"]: np.asarray(r["per_seed"], dtype=float)[:, None] for r in rows}
    if not any(len(v) > 1 for v in scores.values()):
        return False
    values = np.concatenate([v.ravel() for v in scores.values()])
    taus = np.linspace(values.min(), values.max(), 101)
    with seeded_bootstrap():
        profiles, cis = library.create_performance_profile(scores, taus, reps=BOOTSTRAP_REPS)
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_utils.plot_performance_profiles(
        profiles, taus, performance_profile_cis=cis, xlabel="return", ax=ax
    )
    ax.set_title(f"{env}: fraction of runs scoring above each return")
    ax.legend(loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return True


def summarise(runs: list[RunResult]) -> list[dict[str, Any]]:
    """One row per method (insertion order), with each method's probability of improvement
    over ``ppo`` when PPO runs are among them."""
    rows: list[dict[str, Any]] = []
    for method in dict.fromkeys(r.method for r in runs):
        group = sorted((r for r in runs if r.method == method), key=lambda r: r.seed)
        means = [r.mean_return for r in group]
        lo, hi = confidence_interval(means)
        to_solve = [steps_to_threshold(r.curve, r.threshold) for r in group]
        reached = [s for s in to_solve if s is not None]
        rows.append(
            {
                "method": method,
                "seeds": [r.seed for r in group],
                "per_seed": means,
                "mean": float(np.mean(means)),
                "std": float(np.std(means, ddof=1)) if len(means) > 1 else 0.0,
                "ci95": [lo, hi],
                "iqm": iqm(means),
                "iqm_ci95": list(bootstrap_ci(means)),
                "real_env_steps": float(np.mean([r.real_env_steps for r in group])),
                "wall_seconds": float(np.mean([r.wall_seconds for r in group])),
                "steps_to_threshold": to_solve,
                "median_steps_to_threshold": float(np.median(reached)) if reached else None,
                "runs": [str(r.root) for r in group],
            }
        )
    baseline = next((r["per_seed"] for r in rows if r["method"] == "ppo"), None)
    for r in rows:
        if baseline is not None and r["method"] != "ppo":
            p, lo, hi = improvement(r["per_seed"], baseline)
            r["p_improvement_over_ppo"] = [p, lo, hi]
    return rows


def markdown(env: str, rows: list[dict[str, Any]], episodes: int, threshold: float | None) -> str:
    solved = f"{threshold:g}" if threshold is not None else "none"
    lines = [
        f"### {env} ({episodes} evaluation episodes per run; solved threshold {solved})",
        "",
        "| method | seeds | mean return ± std over seeds | 95% CI (t) | IQM [95% bootstrap CI] "
        "| P(> ppo) [95% CI] | per seed | real env steps | wall time | real env steps to "
        "threshold (median; reached/seeds) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["ci95"]
        ci = f"[{lo:.1f}, {hi:.1f}]" if not math.isnan(lo) else "—"
        reached = sum(s is not None for s in r["steps_to_threshold"])
        med = r["median_steps_to_threshold"]
        to = f"{med:,.0f} ({reached}/{len(r['seeds'])})" if med is not None else "never"
        per_seed = " / ".join(f"{m:.1f}" for m in r["per_seed"])
        blo, bhi = r["iqm_ci95"]
        boot = f" [{blo:.1f}, {bhi:.1f}]" if not math.isnan(blo) else ""
        better = "—"
        if "p_improvement_over_ppo" in r:
            p, plo, phi = r["p_improvement_over_ppo"]
            better = f"{p:.2f}" + (f" [{plo:.2f}, {phi:.2f}]" if not math.isnan(plo) else "")
        lines.append(
            f"| {r['method']} | {len(r['seeds'])} | {r['mean']:.1f} ± {r['std']:.1f} | {ci} | "
            f"{r['iqm']:.1f}{boot} | {better} | "
            f"{per_seed} | {r['real_env_steps']:,.0f} | {r['wall_seconds']:.0f} s | {to} |"
        )
    return "\n".join(lines)


def plot_curves(env: str, runs: list[RunResult], path: Path) -> bool:
    """Return vs real env steps per method: median over seeds, min-max band."""
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = False
    for method in dict.fromkeys(r.method for r in runs):
        curves = [r.curve for r in runs if r.method == method and r.curve]
        if not curves:
            continue
        end = max(c[-1][0] for c in curves)
        grid = np.linspace(min(c[0][0] for c in curves), end, 200)
        # each seed's curve held at its last value once it stops (training ended there)
        ys = np.stack(
            [np.interp(grid, [s for s, _ in c], [v for _, v in c], right=c[-1][1]) for c in curves]
        )
        (line,) = ax.plot(grid, np.median(ys, axis=0), label=f"{method} ({len(curves)} seeds)")
        ax.fill_between(grid, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2)
        drawn = True
    threshold = runs[0].threshold
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", label=f"solved ({threshold:g})")
    ax.set_xscale("log")
    ax.set_xlabel("real env steps")
    ax.set_ylabel("return: the score each method judges its policy by")
    ax.set_title(f"{env}: median over seeds, band = min-max")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    if drawn:
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def expand(paths: list[Path]) -> list[Path]:
    """Run directories as given; a directory that is not a run holds runs one level down."""
    out: list[Path] = []
    for p in paths:
        if not p.is_dir():
            raise UserError(f"{p} is not a directory")
        if (p / "config.yaml").exists():
            out.append(p)
            continue
        inner = sorted(q for q in p.iterdir() if (q / "config.yaml").exists())
        if not inner:
            raise UserError(f"{p} is neither a run directory nor a folder of run directories")
        out.extend(inner)
    return out


def compare(paths: list[Path], out_dir: Path) -> tuple[str, list[str]]:
    """The Markdown tables (one per env) and notes; writes compare.json, compare.md and
    compare_<env>.png into ``out_dir``."""
    runs = [load_run(p) for p in expand(paths)]
    notes: list[str] = []
    envs = list(dict.fromkeys(r.env for r in runs))
    if len(envs) > 1:
        notes.append(f"runs of {len(envs)} envs ({', '.join(envs)}): one table per env")
    tables, data = [], {}
    out_dir.mkdir(parents=True, exist_ok=True)  # the figures go there first
    for env in envs:
        group = [r for r in runs if r.env == env]
        for seed in {r.seed for r in group}:
            same = {(r.episodes, r.seed_offset) for r in group if r.seed == seed}
            if len(same) > 1:
                raise UserError(
                    f"{env} runs of seed {seed} were evaluated on different episodes "
                    f"({sorted(same)} as (episodes, seed_offset)); re-run `worldmodels evaluate "
                    f"--run-dir DIR --episodes N` on them with one N"
                )
        rows = summarise(group)
        tables.append(markdown(env, rows, group[0].episodes, group[0].threshold))
        figure = out_dir / f"compare_{env.replace('/', '_')}.png"
        if plot_curves(env, group, figure):
            notes.append(f"learning curves: {figure}")
        profile = out_dir / f"profile_{env.replace('/', '_')}.png"
        if plot_profile(env, rows, profile):
            notes.append(f"performance profile: {profile}")
        data[env] = rows
    text = "\n\n".join(tables)
    atomic_write_json(out_dir / "compare.json", data)
    atomic_write_bytes(out_dir / "compare.md", (text + "\n").encode())
    return text, notes
