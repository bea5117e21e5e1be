"""benchmarks/suite.py and dreamer_targets.py: the target's verdict from the steps-to-threshold
of each seed, and one-file run records (records.py) that stand in for lost runs."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

BENCH = Path(__file__).parent.parent / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:  # as when run as a script: its sibling modules
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _suite():
    return _load("suite")


def _run_dir(path: Path, config: dict, score: float | None, curve: list[tuple[int, float]]):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    (path / "curve.jsonl").write_text(
        "".join(json.dumps({"steps": s, "mean_return": r}) + "\n" for s, r in curve)
    )
    if score is not None:
        result = {"env": "CartPole-v1", "method": config["method"], "episodes": 100,
                  "mean_return": score, "std_return": 1.0, "real_env_steps": 10000,
                  "wall_seconds": 800.0, "threads": 1}  # fmt: skip
        (path / "eval.json").write_text(json.dumps(result))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """The modules, with records, probes and runs under tmp_path and no docs rewritten."""
    suite = _suite()
    records = sys.modules["records"]
    monkeypatch.setattr(records, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(records, "PROBES", tmp_path / "probes")
    monkeypatch.setattr(suite, "ROOT", tmp_path / "runs" / "suite")
    regenerated = []
    monkeypatch.setattr(suite, "regenerate", lambda: regenerated.append(1))
    return suite, records, regenerated


def test_verdict_uses_the_median_over_all_seeds_and_names_the_best_seed():
    suite = _suite()
    by_method = {
        "ppo": [(0, 1000), (1, 2000), (2, 3000)],
        "mpc": [(0, None), (1, 150), (2, None)],  # median over seeds: never
        "classic": [(0, 500), (1, 300), (2, 900)],  # median 500 = 0.25 x PPO's 2000
    }
    text = suite.verdict(by_method, 2000.0)
    assert "best world-model method is classic: 0.250 × PPO's median (missed)" in text
    assert "Best single seed: mpc seed 1, 0.075 × (met)" in text
    by_method["classic"] = [(0, 300), (1, 400)]  # even count: mean of the middle two
    assert "classic: 0.175 × PPO's median (met)" in suite.verdict(by_method, 2000.0)
    never = {"ppo": [(0, 10)], "dream": [(0, None)]}
    assert "no world-model method reached the threshold; no seed of any did" in suite.verdict(
        never, 10.0
    )
    assert "no PPO run reached the threshold" in suite.verdict(never, None)


def test_a_record_stands_in_for_its_run_only_while_the_config_is_todays(tmp_path, isolated):
    """A finished run becomes one file with its config, curve and evaluation; the record is
    read back in place of a lost run while today's presets resolve to its config, and is stale
    (the run is made again) once they do not."""
    suite, records, _ = isolated
    run = tmp_path / "runs" / "suite" / "CartPole-v1" / "dreamer_s3"
    config = records.expected_config("CartPole-v1", "dreamer", 3, [], 1)
    _run_dir(run, config, None, [(100, 9.5), (50, 3.0)])
    assert records.from_run(run) is None  # not finished: nothing to record
    _run_dir(run.with_name("x"), config, 12.0, [(100, 9.5), (50, 3.0)])
    record = records.from_run(run.with_name("x"), command="c", date="d", machine="m")
    assert record["curve"] == [[50, 3.0], [100, 9.5]] and record["eval"]["mean_return"] == 12.0
    assert (record["env"], record["method"], record["seed"], record["command"]) == (
        "CartPole-v1", "dreamer", 3, "c"
    )  # fmt: skip
    path = records.save_result(record)
    assert path == tmp_path / "results" / "CartPole-v1" / "dreamer_s3.json.gz"
    assert records.read(path) == record
    before = path.read_bytes()
    assert records.write(path, record).read_bytes() == before  # the same data, the same bytes
    stored = records.stored(path)
    got, new = suite.run_one("CartPole-v1", "dreamer", 3, [], tmp_path / "elsewhere", 1, stored)
    assert got == stored and new is False  # read, not run
    assert records.is_current(stored, "CartPole-v1", "dreamer", 3, [], 1)
    # another --set item or thread count: the record is not that run's
    assert not records.is_current(stored, "CartPole-v1", "dreamer", 3, ["dreamer.horizon=5"], 1)
    assert not records.is_current(stored, "CartPole-v1", "dreamer", 3, [], 2)
    older = json.loads(json.dumps(stored))
    del older["config"]["dreamer"]["actor_grad_mix"]  # written before a setting existed: default
    assert records.is_current(older, "CartPole-v1", "dreamer", 3, [], 1)
    # written while retired settings (config/retired.py) existed: at their off values, dropped
    older["config"]["dreamer"].update(prio_fraction=0.0, prio_exponent=0.8, end_balance=False)
    assert records.is_current(older, "CartPole-v1", "dreamer", 3, [], 1)
    older["config"]["dreamer"]["prio_fraction"] = 0.5  # on: no run today can make it
    assert records.read_config(older["config"]) is None
    assert not records.is_current(older, "CartPole-v1", "dreamer", 3, [], 1)
    scored = {**stored, "eval": {**stored["eval"], "overrides": {"x.y": 1}}}
    assert not records.is_current(scored, "CartPole-v1", "dreamer", 3, [], 1)
    gone = {**stored, "config": {**stored["config"], "gone": 1}}  # a setting since removed
    assert not records.is_current(gone, "CartPole-v1", "dreamer", 3, [], 1)
    changed = json.loads(json.dumps(stored))
    changed["config"]["dreamer"]["actor_lr"] = 1.0  # a preset changed since
    assert not records.is_current(changed, "CartPole-v1", "dreamer", 3, [], 1)
    assert not records.is_current({"summary_only": True}, "CartPole-v1", "dreamer", 3, [], 1)
    # a run's record replaces the summary-only record rebuilt from an old table
    summary = path.with_name("ppo_s0.json")
    records.write(summary, {"env": "CartPole-v1", "method": "ppo", "seed": 0})
    records.save_result({**record, "method": "ppo", "seed": 0})
    assert not summary.exists() and summary.with_name("ppo_s0.json.gz").exists()


def test_the_suite_tabulates_runs_read_wholly_from_records(tmp_path, isolated, monkeypatch, capsys):
    """When every run of a table is read back from its record, nothing is trained, the record
    is left as it was, the table is printed and the docs are regenerated."""
    suite, records, regenerated = isolated
    config = records.expected_config("CartPole-v1", "dreamer", 0, [], 1)
    _run_dir(tmp_path / "made" / "dreamer_s0", config, 497.5, [(7000, 490.0)])
    record = records.from_run(tmp_path / "made" / "dreamer_s0", command="old command",
                              date="2026-01-01", machine="m", settings=[])  # fmt: skip
    path = records.save_result(record)
    before = path.read_bytes()
    argv = ["suite.py", "--env", "CartPole-v1", "--seeds", "0", "--methods", "dreamer"]
    monkeypatch.setattr(sys, "argv", argv)
    suite.main()
    out = capsys.readouterr().out
    assert "read from its record" in out
    assert "| dreamer | 1 | 497.5 | 497.5 ± 0.0 | 10,000 | 7,000 (1/1) |" in out
    assert "`old command` (2026-01-01; m)" in out
    assert path.read_bytes() == before and regenerated == [1]
    assert not (tmp_path / "runs" / "suite" / "CartPole-v1" / "dreamer_s0").exists()


def test_a_named_probe_of_the_dreamer_targets_reads_its_seeds_back_from_its_file(
    tmp_path, isolated, monkeypatch, capsys
):
    """dreamer_targets.py --set ... --name NAME: the probe's runs live under runs/dreamer_NAME
    and in probes/dreamer.<env>.NAME.json.gz; seeds recorded there with that config are read
    back (nothing is trained, the docs are not touched), and --set without --name is one line
    and exit 2."""
    suite, records, regenerated = isolated
    targets = _load("dreamer_targets")
    monkeypatch.setattr(targets, "ROOT", tmp_path / "runs" / "suite")
    monkeypatch.setattr(targets, "regenerate", suite.regenerate)
    item = "dreamer.horizon=5"
    recs = []
    for seed, score in ((0, 480.0), (1, 420.0)):
        config = records.expected_config("CartPole-v1", "dreamer", seed, [item], 1)
        run = tmp_path / "made" / f"dreamer_s{seed}"
        _run_dir(run, config, score, [(9000, score)])
        if seed == 0:
            host = [{"date": "2026-12-03T21:00:00", "sgemm_gflops": 49.9, "python_loop_ms": 74.4}]
            (run / "host_speed.json").write_text(json.dumps(host))
        recs.append(records.from_run(run, command="c", date="d", machine="m", settings=[item]))
    records.save_probe("dreamer.CartPole-v1.h5", recs, title="h5")
    argv = ["dreamer_targets.py", "--env", "CartPole-v1", "--seeds", "0", "1", "--set", item]
    monkeypatch.setattr(sys, "argv", [*argv, "--name", "h5"])
    targets.main()
    out = capsys.readouterr().out
    assert "| 0 | 480.0 ± 1.0 | 10,000 | 800 s | 50 GFLOPS, 74 ms | 9,000 | yes |" in out
    assert "| 1 | 420.0 ± 1.0 | 10,000 | 800 s | — | never | no |" in out
    probe = records.read(records.probe_path("dreamer.CartPole-v1.h5"))
    assert [r["seed"] for r in probe["runs"]] == [0, 1]
    assert "--threads 1 --set dreamer.horizon=5 --name h5" in probe["command"]
    assert not (tmp_path / "runs" / "dreamer_h5" / "CartPole-v1" / "dreamer_s0").exists()
    assert regenerated == [] and not (tmp_path / "results").exists()

    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        targets.run_main(targets.main)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().endswith("name it with --name NAME")


def test_each_start_of_a_run_appends_the_host_speed_and_its_record_keeps_it(tmp_path, monkeypatch):
    """hostspeed.stamp appends one measurement per start (a resumed run adds one), the
    measurement is a positive matmul rate and loop time, and the run's record keeps them."""
    _suite()
    hostspeed, records, tables = (sys.modules[m] for m in ("hostspeed", "records", "tables"))
    now = hostspeed.measure(trials=1)
    assert now["sgemm_gflops"] > 0 and now["python_loop_ms"] > 0
    run = tmp_path / "runs" / "suite" / "CartPole-v1" / "dreamer_s0"
    speeds = iter([{"date": "d1", "sgemm_gflops": 60.0, "python_loop_ms": 40.0},
                   {"date": "d2", "sgemm_gflops": 31.0, "python_loop_ms": 80.0}])  # fmt: skip
    monkeypatch.setattr(hostspeed, "measure", lambda: next(speeds))
    hostspeed.stamp(run)
    hostspeed.stamp(run)  # resumed
    assert [e["date"] for e in json.loads((run / "host_speed.json").read_text())] == ["d1", "d2"]
    assert hostspeed.describe(run) == "60 GFLOPS, 40 ms / 31 GFLOPS, 80 ms"
    (run / "config.yaml").write_text(yaml.safe_dump({"method": "dreamer", "seed": 0}))
    result = {"env": "CartPole-v1", "episodes": 1, "mean_return": 1.0, "real_env_steps": 1}
    (run / "eval.json").write_text(json.dumps(result))
    record = records.from_run(run, command="c", date="d", machine="m")
    assert tables.host_text(tables.to_run(record)) == hostspeed.describe(run)
    assert hostspeed.describe(tmp_path) == "—"
