"""One-file records of benchmark runs: what the tables are computed from.

A run directory under benchmarks/runs/ holds gigabytes of episodes and checkpoints and is not
committed; a machine that is handed back loses it. Its record keeps what a table needs, as one
JSON file: the resolved config (and its SHA-256), the env spec, the evaluation (``eval.json``:
mean, per-episode returns, real env steps, wall time, math threads, library versions), the
learning curve, the host's speed at each start (hostspeed.py), and the command, machine, date
and ``--set`` items that made it. Records live in two places:

    benchmarks/results/<env>/<method>_s<seed>.json.gz   a run the tables use (tables.py)
    benchmarks/probes/<name>.json.gz                     every run of one probe, in one file

A record stands in for its run only while the config the run would get today (its env, method,
seed, ``--set`` items and thread count resolved through the current presets) equals the
recorded one, read as a run's config is read (a setting added since takes its default), and its
evaluation was scored with that config (no ``evaluate --set`` overrides): a changed preset makes
the record stale and the run is made again.

A record whose ``summary_only`` is true was rebuilt from a table after its run directory was
lost: it has the scores and steps to the threshold that table printed, not a config or curve.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from worldmodels.config import Config, apply_overrides, drop_retired, dump_yaml
from worldmodels.config.merge import parse_set
from worldmodels.errors import UserError
from worldmodels.runs import RunDir

HERE = Path(__file__).parent
RUNS = HERE / "runs"
RESULTS = HERE / "results"
PROBES = HERE / "probes"


def read(path: Path) -> dict[str, Any]:
    """A record or probe file (``.json`` or ``.json.gz``)."""
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)


def write(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` to ``path`` (gzip when it ends in ``.gz``; the same data gives the same
    bytes), atomically."""
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    raw = gzip.compress(text.encode(), mtime=0) if path.name.endswith(".gz") else text.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return path


def kept_rows(path: Path) -> list[dict[str, Any]]:
    """The rows a results file of single measurements keeps (none before the first)."""
    return read(path)["rows"] if path.exists() else []


def keep_row(path: Path, row: dict[str, Any], key: Callable[[dict[str, Any]], Any]) -> list:
    """Add ``row`` to the rows ``path`` keeps, replacing one of the same ``key``, and return
    them all: read and written under a lock, so that scripts side by side lose none of each
    other's."""
    from filelock import FileLock

    with FileLock(f"{path}.lock"):
        rows = [r for r in kept_rows(path) if key(r) != key(row)] + [row]
        write(path, {"rows": rows})
    return rows


def result_path(env: str, method: str, seed: int, root: Path | None = None) -> Path:
    return (root or RESULTS) / env.replace("/", "_") / f"{method}_s{seed}.json.gz"


def save_result(record: dict[str, Any]) -> Path:
    """Write a run's record where the tables read it, replacing the run's summary-only
    record, if any."""
    path = result_path(record["env"], record["method"], record["seed"])
    path.with_name(path.name[: -len(".gz")]).unlink(missing_ok=True)
    return write(path, record)


def probe_path(name: str, root: Path | None = None) -> Path:
    return (root or PROBES) / f"{name}.json.gz"


def config_digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def from_run(run_dir: Path, **meta: Any) -> dict[str, Any] | None:
    """The record of a finished run (None: it has no eval.json); ``meta`` (command, machine,
    date, settings, ...) goes in beside the run's files."""
    run = RunDir(run_dir)
    if not run.eval_path.exists():
        return None
    config = yaml.safe_load(run.config_path.read_text())
    result = json.loads(run.eval_path.read_text())
    speed = run_dir / "host_speed.json"
    return {
        "env": result["env"],
        "method": result.get("method", config.get("method")),
        "seed": int(config["seed"]),
        **meta,
        "threads": int(result.get("threads", config.get("threads", 1))),
        "config_sha256": config_digest(config),
        "config": config,
        "env_spec": json.loads(run.spec_path.read_text()) if run.spec_path.exists() else {},
        "eval": result,
        "curve": [[s, r] for s, r in run.curve()],
        "host_speed": json.loads(speed.read_text()) if speed.exists() else [],
    }


def expected_config(env: str, method: str, seed: int, extra: list[str], threads: int) -> dict:
    """The config `worldmodels train --env E --method M --seed S --set ...` resolves to today
    with ``threads`` math threads, as plain data."""
    from worldmodels.pipeline import resolve_new  # (registers the methods' config sections)

    sets = parse_set([f"method={method}", f"seed={seed}", f"threads={threads}", *extra])
    return yaml.safe_load(dump_yaml(resolve_new(env, [], {}, sets)[0]))


def read_config(config: dict[str, Any]) -> dict[str, Any] | None:
    """A recorded config read as a run's is (a setting added since takes its default, a
    retired one at its off value is dropped); None when a setting no longer exists."""
    import worldmodels.registry  # noqa: F401

    cfg = Config()
    try:
        apply_overrides(cfg, drop_retired(config, "the record"))
    except UserError:
        return None
    return yaml.safe_load(dump_yaml(cfg))


def is_current(
    record: dict[str, Any] | None, env: str, method: str, seed: int, extra: list[str], threads: int
) -> bool:
    """Whether a record stands in for the run `train` would make today with these settings."""
    if not record or record.get("summary_only") or "config" not in record:
        return False
    if "overrides" in record.get("eval", {}):
        return False  # scored with `evaluate --set` items its config does not have
    recorded = read_config(record["config"])
    return recorded is not None and recorded == expected_config(env, method, seed, extra, threads)


def stored(path: Path) -> dict[str, Any] | None:
    """The record at ``path`` (None: there is none)."""
    return read(path) if path.exists() else None


def probe_run(name: str, method: str, seed: int, env: str) -> dict[str, Any] | None:
    """A probe's recorded run of ``method`` and ``seed`` on ``env`` (None: none)."""
    path = probe_path(name)
    if not path.exists():
        return None
    return next(
        (
            r
            for r in read(path)["runs"]
            if (r["env"], r["method"], r["seed"]) == (env, method, seed)
        ),
        None,
    )


def save_probe(name: str, runs: list[dict[str, Any]], **meta: Any) -> Path:
    """Add (or replace, by env, method and seed) ``runs`` in the probe's file."""
    path = probe_path(name)
    probe = read(path) if path.exists() else {"name": name, "runs": []}
    probe.update(meta)
    keys = {(r["env"], r["method"], r["seed"]) for r in runs}
    kept = [r for r in probe["runs"] if (r["env"], r["method"], r["seed"]) not in keys]
    probe["runs"] = sorted([*kept, *runs], key=lambda r: (r["env"], r["method"], r["seed"]))
    return write(path, probe)
