"""benchmarks/suite.py judges issue 6's target from the steps-to-threshold of each seed."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

SUITE = Path(__file__).parent.parent / "benchmarks" / "suite.py"


def _suite():
    if str(SUITE.parent) not in sys.path:  # as when run as a script: its sibling modules
        sys.path.insert(0, str(SUITE.parent))
    spec = importlib.util.spec_from_file_location("suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_a_record_stands_in_for_its_run_only_while_the_config_is_todays(tmp_path, monkeypatch):
    """benchmarks/records.py: a finished run's table files are copied into its record; the
    record is read back in place of a lost run while today's presets resolve to its config, and
    is stale (the run is made again) once they do not."""
    suite = _suite()
    records = sys.modules["records"]
    monkeypatch.setattr(records, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(records, "RECORDS", tmp_path / "records")
    run = tmp_path / "runs" / "suite" / "CartPole-v1" / "dreamer_s3"
    run.mkdir(parents=True)
    config = records.expected_config("CartPole-v1", "dreamer", 3, [], 1)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "curve.jsonl").write_text('{"real_env_steps": 100, "mean_return": 9.5}\n')
    (run / "data").mkdir()  # what a record leaves behind
    assert records.keep(run) is None  # not finished: nothing recorded
    (run / "eval.json").write_text(json.dumps({"mean_return": 12.0}))
    kept = records.keep(run)
    assert kept == tmp_path / "records" / "suite" / "CartPole-v1" / "dreamer_s3"
    assert sorted(p.name for p in kept.iterdir()) == ["config.yaml", "curve.jsonl", "eval.json"]
    assert (kept / "curve.jsonl").read_text() == (run / "curve.jsonl").read_text()

    shutil.rmtree(run)  # the machine was handed back: only the record is left
    root = tmp_path / "runs" / "suite"
    assert suite.run_one("CartPole-v1", "dreamer", 3, [], root) == kept  # read, not run
    assert records.current_record(run, "CartPole-v1", "dreamer", 3, [], 1) == kept
    # another --set item or thread count: the record is not that run's
    assert (
        records.current_record(run, "CartPole-v1", "dreamer", 3, ["dreamer.horizon=5"], 1) is None
    )
    assert records.current_record(run, "CartPole-v1", "dreamer", 3, [], 2) is None
    del config["dreamer"]["entropy_lr"]  # written before a setting existed: its default
    (kept / "config.yaml").write_text(yaml.safe_dump(config))
    assert records.current_record(run, "CartPole-v1", "dreamer", 3, [], 1) == kept
    scored = (kept / "eval.json").read_text()  # evaluated with `evaluate --set`: not the config's
    (kept / "eval.json").write_text(json.dumps({"mean_return": 12.0, "overrides": {"x.y": 1}}))
    assert records.current_record(run, "CartPole-v1", "dreamer", 3, [], 1) is None
    (kept / "eval.json").write_text(scored)
    (kept / "config.yaml").write_text(yaml.safe_dump({**config, "gone": 1}))  # since removed
    assert records.current_record(run, "CartPole-v1", "dreamer", 3, [], 1) is None
    config["dreamer"]["actor_lr"] = 1.0  # a preset changed since the record was made
    (kept / "config.yaml").write_text(yaml.safe_dump(config))
    assert records.current_record(run, "CartPole-v1", "dreamer", 3, [], 1) is None
    assert records.record_of(tmp_path / "elsewhere" / "run") is None


def test_the_suite_tabulates_a_table_read_wholly_from_records(tmp_path, monkeypatch):
    """Regression: when every run of a table is read back from its record, the env's run folder
    does not exist; suite.py crashed listing it instead of writing the section."""
    suite = _suite()
    records = sys.modules["records"]
    monkeypatch.setattr(records, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(records, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(suite, "ROOT", tmp_path / "runs" / "suite")
    monkeypatch.setattr(suite, "HERE", tmp_path / "benchmarks")  # paths in the section
    monkeypatch.setattr(suite, "RESULTS", tmp_path / "RESULTS.md")
    record = tmp_path / "records" / "suite" / "CartPole-v1" / "dreamer_s0"
    record.mkdir(parents=True)
    config = records.expected_config("CartPole-v1", "dreamer", 0, [], 1)
    (record / "config.yaml").write_text(yaml.safe_dump(config))
    (record / "curve.jsonl").write_text(json.dumps({"steps": 7000, "mean_return": 490.0}) + "\n")
    result = {"env": "CartPole-v1", "method": "dreamer", "episodes": 100, "mean_return": 497.5,
              "std_return": 1.0, "real_env_steps": 10000, "wall_seconds": 800.0}  # fmt: skip
    (record / "eval.json").write_text(json.dumps(result))
    argv = ["suite.py", "--env", "CartPole-v1", "--seeds", "0", "--methods", "dreamer"]
    monkeypatch.setattr(sys, "argv", argv)
    suite.main()
    suite.main()  # again: the folder now holds compare.json and the figures, still no run
    text = (tmp_path / "RESULTS.md").read_text()
    assert "<!-- suite:CartPole-v1 -->" in text and "| dreamer | 1 | 497.5 ± 0.0 |" in text
    assert (tmp_path / "runs" / "suite" / "CartPole-v1" / "compare.json").exists()
    assert not (tmp_path / "runs" / "suite" / "CartPole-v1" / "dreamer_s0").exists()


def test_a_named_probe_of_the_dreamer_targets_reads_its_seeds_back_from_records(
    tmp_path, monkeypatch, capsys
):
    """benchmarks/dreamer_targets.py --set ... --name NAME: the probe's runs live under
    runs/dreamer_NAME, its section is dreamer:<env>:NAME with the --set items in its command;
    seeds recorded with that config are read back (nothing is trained), and --set without
    --name is one line and exit 2."""
    suite = _suite()
    records = sys.modules["records"]
    spec = importlib.util.spec_from_file_location(
        "dreamer_targets", SUITE.parent / "dreamer_targets.py"
    )
    targets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(targets)
    monkeypatch.setattr(records, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(records, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(targets, "ROOT", tmp_path / "runs" / "suite")
    monkeypatch.setattr(suite, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(targets, "write_results", suite.write_results)
    item = "dreamer.horizon=5"
    for seed, score in ((0, 480.0), (1, 420.0)):
        record = tmp_path / "records" / "dreamer_h5" / "CartPole-v1" / f"dreamer_s{seed}"
        record.mkdir(parents=True)
        config = records.expected_config("CartPole-v1", "dreamer", seed, [item], 1)
        (record / "config.yaml").write_text(yaml.safe_dump(config))
        (record / "curve.jsonl").write_text(
            json.dumps({"steps": 9000, "mean_return": score}) + "\n"
        )
        result = {"env": "CartPole-v1", "method": "dreamer", "episodes": 100,
                  "mean_return": score, "std_return": 1.0, "real_env_steps": 10000,
                  "wall_seconds": 800.0}  # fmt: skip
        (record / "eval.json").write_text(json.dumps(result))
    host = [{"date": "2026-12-03T21:00:00", "sgemm_gflops": 49.9, "python_loop_ms": 74.4}]
    (record.parent / "dreamer_s0" / "host_speed.json").write_text(json.dumps(host))
    argv = ["dreamer_targets.py", "--env", "CartPole-v1", "--seeds", "0", "1", "--set", item]
    monkeypatch.setattr(sys, "argv", [*argv, "--name", "h5"])
    targets.main()
    text = (tmp_path / "RESULTS.md").read_text()
    assert "<!-- suite:dreamer:CartPole-v1:h5 -->" in text
    assert "--threads 1 --set dreamer.horizon=5 --name h5`" in text
    assert "| 0 | 480.0 ± 1.0 | 10,000 | 800 s | 50 GFLOPS, 74 ms | 9,000 | yes |" in text
    assert "| 1 | 420.0 ± 1.0 | 10,000 | 800 s | — | never | no |" in text
    assert not (tmp_path / "runs" / "dreamer_h5" / "CartPole-v1" / "dreamer_s0").exists()

    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        targets.run_main(targets.main)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().endswith("name it with --name NAME")


def test_each_start_of_a_run_appends_the_host_speed_and_its_record_keeps_it(tmp_path, monkeypatch):
    """hostspeed.stamp appends one measurement per start (a resumed run adds one), the
    measurement is a positive matmul rate and loop time, and records.keep copies the file."""
    _suite()
    hostspeed, records = sys.modules["hostspeed"], sys.modules["records"]
    now = hostspeed.measure(trials=1)
    assert now["sgemm_gflops"] > 0 and now["python_loop_ms"] > 0
    monkeypatch.setattr(records, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(records, "RECORDS", tmp_path / "records")
    run = tmp_path / "runs" / "suite" / "CartPole-v1" / "dreamer_s0"
    speeds = iter([{"date": "d1", "sgemm_gflops": 60.0, "python_loop_ms": 40.0},
                   {"date": "d2", "sgemm_gflops": 31.0, "python_loop_ms": 80.0}])  # fmt: skip
    monkeypatch.setattr(hostspeed, "measure", lambda: next(speeds))
    hostspeed.stamp(run)
    hostspeed.stamp(run)  # resumed
    assert [e["date"] for e in json.loads((run / "host_speed.json").read_text())] == ["d1", "d2"]
    assert hostspeed.describe(run) == "60 GFLOPS, 40 ms / 31 GFLOPS, 80 ms"
    (run / "eval.json").write_text("{}")
    record = records.keep(run)
    assert hostspeed.describe(record) == hostspeed.describe(run)
    assert hostspeed.describe(tmp_path) == "—"
