"""``worldmodels report RUN_DIR... --out report.html``: one self-contained HTML file (no
network: every image and gif embedded as a data URI) to show runs to someone -- per env, the
evaluation table, the ``compare`` statistics (IQM with its bootstrap interval, probability of
improvement over PPO), learning curves against real env steps (median and spread over seeds)
and the performance profile; per run, ``diagnose``'s error-vs-k and scatter plots and the
run's videos when they exist, its config's difference from the defaults, the library versions
its checkpoints recorded, the machine and the math threads."""

from __future__ import annotations

import base64
import html
import json
import math
import os
import platform
import tempfile
from pathlib import Path

from worldmodels.config import Config, flat_items, to_dict
from worldmodels.evaluation.compare import (
    RunResult,
    expand,
    load_run,
    plot_curves,
    plot_profile,
    summarise,
)
from worldmodels.runs import RunDir, atomic_write_bytes, load_checkpoint, versions

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 0.2em; }
section.run { border-top: 2px solid #ddd; margin-top: 2em; }
"""

EVAL_HEADER = ["env", "method", "seed", "episodes", "mean return", "std", "real env steps"]
EVAL_HEADER += ["wall time", "threads"]
MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg"}


def embed(path: Path, alt: str) -> str:
    """An ``<img>`` carrying the file itself (base64), so the page needs nothing else."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:{MIME[path.suffix]};base64,{data}">'


def table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def interval(lo: float, hi: float, digits: int = 1) -> str:
    return "—" if math.isnan(lo) else f"[{fmt(lo, digits)}, {fmt(hi, digits)}]"


def env_section(env: str, group: list[RunResult], scratch: Path) -> str:
    rows = summarise(group)
    stats = []
    for r in rows:
        better = r.get("p_improvement_over_ppo")
        stats.append(
            [
                html.escape(r["method"]),
                str(len(r["seeds"])),
                f"{fmt(r['mean'])} ± {fmt(r['std'])}",
                f"{fmt(r['iqm'])} {interval(*r['iqm_ci95'])}",
                f"{better[0]:.2f} {interval(better[1], better[2], 2)}" if better else "—",
                " / ".join(fmt(m) for m in r["per_seed"]),
                fmt(r["real_env_steps"], 0),
                fmt(r["median_steps_to_threshold"], 0),
            ]
        )
    header = ["method", "seeds", "mean ± std over seeds", "IQM [95% stratified bootstrap]"]
    header += ["P(> ppo) [95%]", "per seed", "real env steps", "steps to threshold (median)"]
    parts = [f"<h2>{html.escape(env)}</h2>", table(header, stats, "stats")]
    name = env.replace("/", "_")
    for figure, draw in [
        (scratch / f"curves_{name}.png", lambda p: plot_curves(env, group, p)),
        (scratch / f"profile_{name}.png", lambda p: plot_profile(env, rows, p)),
    ]:
        if draw(figure):
            parts.append(embed(figure, figure.stem))
    return "\n".join(parts)


def recorded_versions(run: RunDir) -> dict[str, str]:
    """The library versions a checkpoint of the run recorded (the first one found)."""
    for path in sorted(run.checkpoints.glob("*/*.pt")):
        try:
            return dict(load_checkpoint(path).get("versions", {}))
        except Exception:  # a damaged checkpoint: try the next
            continue
    return {}


def config_changes(cfg: Config) -> list[list[str]]:
    """The keys whose values differ from the defaults (presets included: what was chosen)."""
    ours, defaults = flat_items(to_dict(cfg)), flat_items(to_dict(Config()))
    return [
        [f"<code>{html.escape(k)}</code>", html.escape(json.dumps(v)),
         html.escape(json.dumps(defaults.get(k)))]
        for k, v in ours.items()
        if v != defaults.get(k) and k != "sections"
    ]  # fmt: skip


def run_section(result: RunResult) -> str:
    run = RunDir(result.root)
    cfg = run.load_config()
    evaluation = json.loads(run.eval_path.read_text())
    parts = [
        f'<section class="run"><h3>{html.escape(str(result.root))}</h3>',
        table(
            EVAL_HEADER,
            [
                [
                    html.escape(result.env),
                    html.escape(result.method),
                    str(result.seed),
                    str(result.episodes),
                    fmt(result.mean_return),
                    fmt(float(evaluation.get("std_return", math.nan))),
                    fmt(result.real_env_steps, 0),
                    f"{fmt(result.wall_seconds, 0)} s",
                    str(evaluation.get("threads", cfg.threads)),
                ]
            ],
            "eval",
        ),
    ]
    for plot in sorted(run.plots.glob("diagnostics_*.png")):
        parts.append(embed(plot, plot.stem))
    diagnostics = run.root / "diagnostics.json"
    if diagnostics.exists():
        parts.append(f"<p>diagnose: <code>{html.escape(str(diagnostics))}</code></p>")
    for video in sorted(run.videos.glob("*.gif")):
        parts.append(f"<p>{html.escape(video.name)}</p>" + embed(video, video.stem))
    changes = config_changes(cfg)
    parts.append("<h4>Config: its difference from the defaults</h4>")
    parts.append(table(["key", "this run", "default"], changes, "config"))
    recorded = recorded_versions(run)
    if recorded:
        items = [[html.escape(k), html.escape(str(v))] for k, v in recorded.items()]
        parts.append(
            "<h4>Versions its checkpoints recorded</h4>" + table(["library", "version"], items)
        )
    parts.append("</section>")
    return "\n".join(parts)


def report(paths: list[Path], out: Path) -> tuple[Path, int]:
    """Write the report; returns its path and the number of runs in it."""
    runs = [load_run(p) for p in expand(paths)]
    envs = list(dict.fromkeys(r.env for r in runs))
    machine = [
        ["machine", html.escape(f"{platform.platform()} ({platform.machine()})")],
        ["CPUs", str(os.cpu_count())],
        ["python", platform.python_version()],
        *[[html.escape(k), html.escape(v)] for k, v in versions().items()],
    ]
    with tempfile.TemporaryDirectory(prefix="worldmodels-report-") as tmp:
        sections = [env_section(env, [r for r in runs if r.env == env], Path(tmp)) for env in envs]
    body = [
        f"<h1>worldmodels report: {len(runs)} run{'s' * (len(runs) != 1)}, "
        f"{len(envs)} env{'s' * (len(envs) != 1)}</h1>",
        *sections,
        *[run_section(r) for r in runs],
        "<h2>Made on</h2>",
        table(["", ""], machine, "machine"),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>worldmodels report</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    atomic_write_bytes(out, page.encode())
    return out, len(runs)
