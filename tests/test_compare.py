"""`worldmodels compare`: the statistics by hand, steps to the threshold from the learning
curve, grouping by env, and the bad inputs."""

import json
import math

import pytest

from worldmodels.cli import main
from worldmodels.config import Config, dump_yaml
from worldmodels.evaluation.compare import (
    bootstrap_ci,
    confidence_interval,
    improvement,
    iqm,
    steps_to_threshold,
)
from worldmodels.runs import RunDir


def _fake_run(root, env, method, seed, mean, curve, episodes=100, threshold=475.0):
    run = RunDir(root)
    root.mkdir(parents=True)
    cfg = Config()
    cfg.seed, cfg.method, cfg.env.id = seed, method, env
    run.config_path.write_text(dump_yaml(cfg))
    run.spec_path.write_text(json.dumps({"env_id": env, "reward_threshold": threshold}))
    result = {"env": env, "method": method, "episodes": episodes, "mean_return": mean}
    result |= {"std_return": 1.0, "real_env_steps": curve[-1][0], "wall_seconds": 10.0 * seed}
    run.eval_path.write_text(json.dumps(result))
    for steps, value in curve:
        run.log_curve(steps, value)
    return root


def test_confidence_interval_and_steps_to_threshold_by_hand():
    lo, hi = confidence_interval([1.0, 2.0, 3.0])
    half = 4.302652729749462 * (1.0 / math.sqrt(3))  # t(0.975, 2) * std(ddof=1) / sqrt(3)
    assert lo == pytest.approx(2.0 - half) and hi == pytest.approx(2.0 + half)
    assert all(math.isnan(v) for v in confidence_interval([5.0]))
    curve = [(100, 20.0), (200, 480.0), (300, 400.0), (400, 500.0)]
    assert steps_to_threshold(curve, 475.0) == 200
    assert steps_to_threshold(curve, 501.0) is None and steps_to_threshold(curve, None) is None


def test_compare_table_json_and_figure(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed, mean in enumerate([400.0, 450.0, 500.0]):
        _fake_run(
            runs / f"ppo_s{seed}",
            "CartPole-v1",
            "ppo",
            seed,
            mean,
            [(1000, 20.0), (20000 + 1000 * seed, 480.0), (30000, 490.0)],
        )
        _fake_run(
            runs / f"mpc_s{seed}",
            "CartPole-v1",
            "mpc",
            seed,
            mean - 100,
            [(200, 20.0), (3000, 300.0), (5000, 300.0 + 100 * seed)],
        )
    out = tmp_path / "out"
    assert main(["compare", str(runs), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| ppo | 3 | 450.0 ± 50.0 |" in text  # the sample std over seeds, as in the CI
    data = json.loads((out / "compare.json").read_text())["CartPole-v1"]
    ppo = next(r for r in data if r["method"] == "ppo")
    mpc = next(r for r in data if r["method"] == "mpc")
    assert ppo["steps_to_threshold"] == [20000, 21000, 22000]
    assert ppo["median_steps_to_threshold"] == 21000
    assert mpc["steps_to_threshold"] == [None, None, 5000]  # only seed 2 reached 475
    assert mpc["median_steps_to_threshold"] == 5000
    assert ppo["wall_seconds"] == pytest.approx(10.0)
    assert (out / "compare.md").read_text().startswith("### CartPole-v1")
    assert (out / "compare_CartPole-v1.png").stat().st_size > 1000
    assert (out / "profile_CartPole-v1.png").stat().st_size > 1000  # performance profile
    # mpc's runs (300, 350, 400) against ppo's (400, 450, 500): one tie of 9 pairs
    assert mpc["p_improvement_over_ppo"][0] == pytest.approx(0.5 / 9)
    assert "p_improvement_over_ppo" not in ppo and "0.06 [" in text
    # evaluate --method compare: the same over the runs inside --run-dir
    assert main(["evaluate", "--method", "compare", "--run-dir", str(runs)]) == 0
    assert (runs / "compare.json").exists()


def test_compare_groups_envs_and_refuses_bad_inputs(tmp_path, capsys):
    a = _fake_run(tmp_path / "a", "CartPole-v1", "ppo", 0, 400.0, [(10, 1.0)])
    b = _fake_run(tmp_path / "b", "LunarLander-v3", "ppo", 0, 100.0, [(10, 1.0)], threshold=200)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "### CartPole-v1" in out and "### LunarLander-v3" in out
    assert "note: runs of 2 envs (CartPole-v1, LunarLander-v3): one table per env" in out
    no_eval = tmp_path / "c"
    _fake_run(no_eval, "CartPole-v1", "mpc", 0, 1.0, [(10, 1.0)])
    (no_eval / "eval.json").unlink()
    other = _fake_run(tmp_path / "d", "CartPole-v1", "mpc", 0, 1.0, [(10, 1.0)], episodes=10)
    for argv, needle in [
        (
            [str(a), str(no_eval)],
            f"{no_eval} has no eval.json; produce it with `worldmodels "
            f"evaluate --run-dir {no_eval}`",
        ),
        ([str(a), str(other)], "evaluated on different episodes"),
        ([str(tmp_path / "missing")], "is not a directory"),
    ]:
        assert main(["compare", *argv, "--out", str(tmp_path / "o2")]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1


def test_iqm_and_its_bootstrap_interval_by_hand():
    assert iqm([1.0, 2.0, 3.0, 4.0, 100.0]) == 3.0  # 5 seeds: the middle three
    assert iqm([1.0, 2.0, 3.0, 4.0]) == 2.5
    lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0, 100.0])
    assert 1.0 <= lo <= 3.0 <= hi <= 100.0
    assert (lo, hi) == bootstrap_ci([1.0, 2.0, 3.0, 4.0, 100.0])  # seeded: the same twice
    assert bootstrap_ci([500.0] * 5) == (500.0, 500.0)
    assert all(math.isnan(v) for v in bootstrap_ci([5.0]))


def test_probability_of_improvement_by_hand():
    """rliable's P(X > Y): the share of (x, y) pairs with x > y, ties counting half."""
    p, lo, hi = improvement([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert p == pytest.approx((0 + 1.5 + 3) / 9)  # 1 < 2 (x3), 2 = 2 (x3 halves), 3 > 2 (x3)
    assert 0.0 <= lo <= p <= hi <= 1.0
    assert improvement([5.0, 6.0], [1.0, 2.0])[0] == 1.0
    assert math.isnan(improvement([5.0], [1.0, 2.0])[1])  # one run: no interval
