"""Committed records of finished benchmark runs, so a 5-seed table can grow across machines.

A run directory under benchmarks/runs/ holds gigabytes of episodes and checkpoints and is not
committed; a machine that is handed back loses it. Its record, under benchmarks/records/ at the
same relative path, keeps the files a table is made of -- the resolved config, the env spec,
eval.json, the learning curve and the host's speed at the run's starts (hostspeed.py) -- a few
kilobytes, enough for `worldmodels compare` and the steps-to-target columns. A record stands in
for its run only while the config the run would get today (its env, method, seed, ``--set``
items and thread count resolved through the current presets) equals the recorded one, read as a
run's config is read (a setting added since takes its default), and its eval.json was scored
with that config (no ``evaluate --set`` overrides): a changed preset makes the record stale and
the run is made again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from worldmodels.config import dump_yaml
from worldmodels.config.merge import parse_set, resolve
from worldmodels.errors import UserError
from worldmodels.runs import RunDir

HERE = Path(__file__).parent
RUNS = HERE / "runs"
RECORDS = HERE / "records"
KEPT = ("config.yaml", "env_spec.json", "eval.json", "curve.jsonl", "host_speed.json")


def record_of(run_dir: Path) -> Path | None:
    """Where the record of a run under benchmarks/runs/ lives (None: a run elsewhere)."""
    if not run_dir.resolve().is_relative_to(RUNS.resolve()):
        return None
    return RECORDS / run_dir.resolve().relative_to(RUNS.resolve())


def keep(run_dir: Path) -> Path | None:
    """Copy a finished run's table files into its record (None: the run has no eval.json)."""
    record = record_of(run_dir)
    if record is None or not (run_dir / "eval.json").exists():
        return None
    record.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, record / name)
    return record


def expected_config(env: str, method: str, seed: int, extra: list[str], threads: int) -> dict:
    """The config `worldmodels train --env E --method M --seed S --set ...` resolves to today
    with ``threads`` math threads, as plain data."""
    import worldmodels.methods  # noqa: F401  (registers the methods' config sections)

    sets = parse_set([f"method={method}", f"seed={seed}", f"threads={threads}", *extra])
    return yaml.safe_load(dump_yaml(resolve(env, [], {}, sets)))


def current_record(
    run_dir: Path, env: str, method: str, seed: int, extra: list[str], threads: int
) -> Path | None:
    """The run's record when it exists, is finished and was made with today's config."""
    record = record_of(run_dir)
    if record is None or not (record / "eval.json").exists():
        return None
    if "overrides" in json.loads((record / "eval.json").read_text()):
        return None  # scored with `evaluate --set` items its config does not have
    try:  # read as a run's config is read: a setting added since then takes its default
        recorded = yaml.safe_load(dump_yaml(RunDir(record).load_config()))
    except UserError:  # unreadable, or a setting that no longer exists: stale
        return None
    return record if recorded == expected_config(env, method, seed, extra, threads) else None
