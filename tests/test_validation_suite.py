"""benchmarks/validation.py, normalised.py and the results page's suite section: PPO-normalised
scores, their IQM over envs and seeds, the envs where the dreamer's IQM is at or above PPO's,
each run's settings, and the random policy's score -- on hand-made records with hand-computed
numbers."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from worldmodels.seeding import Stream, reset_seeds

BENCH = Path(__file__).parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def validation():
    if str(BENCH) not in sys.path:  # as when run as a script: its sibling modules
        sys.path.insert(0, str(BENCH))
    return importlib.import_module("validation")


# A: random 0, PPO's IQM 10 (all 10), the dreamer 5/10/15/20 (IQM 12.5: at or above PPO).
# B: random -100, PPO -70/-50/-50/-50 (IQM -50, mean -55), the dreamer -100/-90/-80/-70 (IQM
# -85: below PPO's).
# C: PPO (IQM -1) no better than random (0); D: no PPO runs. Neither can be normalised.
RUNS = {
    ("A", "ppo"): [10, 10, 10, 10],
    ("A", "dreamer"): [5, 10, 15, 20],
    ("B", "ppo"): [-70, -50, -50, -50],
    ("B", "dreamer"): [-100, -90, -80, -70],
    ("C", "ppo"): [-1, -1, -1, -1],
    ("C", "dreamer"): [3, 3, 3, 3],
    ("D", "dreamer"): [1, 2, 3, 4],
}
RANDOM = {"A": 0.0, "B": -100.0, "C": 0.0, "D": 0.0}


@pytest.fixture(scope="module")
def normalised(validation):
    return importlib.import_module("normalised")


@pytest.fixture
def scores(normalised):
    return normalised.scores_of(
        (env, method, seed, score)
        for (env, method), values in RUNS.items()
        for seed, score in enumerate(values)
    )


def test_a_score_on_the_random_0_ppo_1_scale(normalised):
    assert normalised.normalised(12.5, 0.0, 10.0) == 1.25
    assert normalised.normalised(-75.0, -100.0, -50.0) == 0.5
    assert normalised.normalised(-100.0, -100.0, -50.0) == 0.0


def test_only_envs_where_ppo_beats_the_random_policy_are_normalised(normalised, scores):
    assert normalised.normalisable(scores, RANDOM) == (["A", "B"], ["C", "D"])


def test_the_normalised_scores_are_runs_by_envs(normalised, scores):
    matrix = normalised.normalised_scores(scores, RANDOM, ["A", "B"])
    assert list(matrix) == ["ppo", "dreamer"]
    np.testing.assert_allclose(matrix["dreamer"], [[0.5, 0], [1, 0.2], [1.5, 0.4], [2, 0.6]])
    np.testing.assert_allclose(matrix["ppo"], [[1, 0.6], [1, 1], [1, 1], [1, 1]])


def test_a_method_keeps_the_seeds_it_has_on_every_env(normalised, scores):
    del scores["B"]["dreamer"][3]
    matrix = normalised.normalised_scores(scores, RANDOM, ["A", "B"])
    np.testing.assert_allclose(matrix["dreamer"], [[0.5, 0], [1, 0.2], [1.5, 0.4]])
    assert matrix["ppo"].shape == (4, 2)


def test_an_env_with_fewer_seeds_waits_outside_the_aggregate(normalised, scores):
    """E has PPO and the dreamer on seed 0 only: the aggregate stays A and B's 4 seeds x 2
    envs rather than becoming 1 seed x 3 envs."""
    scores["E"] = {"ppo": {0: 10.0}, "dreamer": {0: 5.0}}
    assert normalised.complete(scores, ["A", "B", "E"]) == (["A", "B"], ["E"])
    assert normalised.run_seeds(scores, "E") == {0}
    del scores["A"]["ppo"][3]  # A's seed 3 lacks PPO: B's four seeds are the largest set
    assert normalised.complete(scores, ["A", "B"]) == (["B"], ["A"])


def test_the_aggregate_is_the_iqm_over_every_run_on_every_env(normalised, scores):
    aggregate = normalised.aggregate_iqm(normalised.normalised_scores(scores, RANDOM, ["A", "B"]))
    # dreamer: 0, .2, .4, .5, .6, 1, 1.5, 2 -> the middle four .4, .5, .6, 1 -> 0.625
    point, lo, hi = aggregate["dreamer"]
    assert point == pytest.approx(0.625)
    assert lo < point < hi
    # PPO: .6, then 1 seven times -> 1; no resample's IQM is above 1
    point, lo, hi = aggregate["ppo"]
    assert point == pytest.approx(1.0) == hi
    assert lo <= 1.0


def test_envs_where_the_dreamer_is_at_or_above_ppo(normalised, scores):
    # A: 12.5 >= 10; B: -85 < -50; C: 3 >= -1; D: no PPO runs to compare with
    assert normalised.at_or_above(scores) == ["A", "C"]
    scores["A"]["dreamer"] = dict.fromkeys(range(4), 10.0)  # a tie counts
    assert normalised.at_or_above(scores) == ["A", "C"]


def test_the_performance_profile_is_drawn(normalised, scores, tmp_path):
    matrix = normalised.normalised_scores(scores, RANDOM, ["A", "B"])
    path = normalised.draw_profile(matrix, tmp_path / "profile.png", reps=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_run_gets_its_budget_and_ppo_updates_within_it(validation, monkeypatch):
    assert validation.method_settings("Acrobot-v1", "dreamer") == []
    # ppo.yaml has rl-zoo's entry for every validation env: its env count is kept, but for
    # BipedalWalker-v3's 32 x 2,048 steps, which fill no rollout in 10,000 steps
    for env, spec in validation.ENVS.items():
        one = ["ppo.n_envs=1"] if env == "BipedalWalker-v3" else []
        assert validation.method_settings(env, "ppo") == [f"ppo.total_steps={spec.budget}", *one]
    # an env without an entry gets SB3's defaults with one env (Pendulum-v1 has no ppo entry)
    monkeypatch.setitem(validation.ENVS, "Pendulum-v1", validation.ENVS["Acrobot-v1"])
    assert validation.method_settings("Pendulum-v1", "ppo") == [
        "ppo.total_steps=10000",
        "ppo.n_envs=1",
    ]
    monkeypatch.undo()
    assert validation.ppo_updates(10_000, 8, 2048) == 0  # the ppo section's default envs
    assert validation.ppo_updates(10_000, 1, 2048) == 4
    assert validation.ppo_updates(100_000, 8, 128) == 97  # Pong: rl-zoo's atari entry
    assert validation.ppo_updates(10_000, 16, 256) == 2  # Acrobot-v1
    assert validation.ppo_updates(10_000, 32, 2048) == 0  # BipedalWalker-v3
    # a rollout ending at the budget's step is not trained on: MountainCarContinuous-v0
    assert validation.ppo_updates(10_000, 1, 8) == 1249
    assert validation.ppo_updates(16, 1, 8) == 1
    for env in validation.ENVS:
        validation.check_untuned(env)  # no dreamer entry; the sized: budget is the one stated


def test_the_random_policy_is_measured_once_on_the_evaluation_stream(validation, tmp_path):
    first = validation.measure_random("CartPole-v1", [], episodes=4)
    assert first["seeds"] == reset_seeds(0, Stream.EVALUATE, 0, 4)
    assert first["mean_return"] == pytest.approx(np.mean(first["returns"]))
    assert validation.measure_random("CartPole-v1", [], episodes=4)["returns"] == first["returns"]
    path = tmp_path / "random_policy.json.gz"
    kept = {**first, "episodes": validation.RANDOM_EPISODES}
    validation.records.write(path, {"envs": [kept]})
    assert validation.random_scores(["CartPole-v1"], [], path)["CartPole-v1"] == kept


def test_the_results_page_gives_the_suite_aggregate(validation, scores):
    import tables

    recs = [{"env": env, "method": method, "seed": seed, "command": "python benchmarks/x.py",
             "date": "2026-12-06", "machine": "here", "eval": {"mean_return": score,
                                                                "episodes": 100}}
            for env, by in scores.items() for method, runs in by.items()
            for seed, score in runs.items()]  # fmt: skip
    rows = tables.rows_of([tables.to_run(r) for r in recs])
    named, suite = tables.split_suite(rows, {"A": 0.0, "B": -100.0, "C": 0.0, "D": 0.0})
    assert named == {} and list(suite) == ["A", "B", "C", "D"]
    text = tables.validation_table(suite, RANDOM, "img/profile.png")
    assert "| A | 0.0 | 10.0 [" in text and "| yes |" in text  # dreamer 12.5 >= PPO 10
    assert "The dreamer's IQM is at or above PPO's on 2 of 3 envs." in text  # A and C; D: no PPO
    assert (
        "Not normalisable (no PPO runs, or PPO's IQM not above the random policy's): C, D." in text
    )
    assert "- dreamer: 0.62 [" in text and "(4 seeds × 2 envs)" in text
    assert "![Performance profile of the PPO-normalised scores](img/profile.png)" in text
    line = tables.suite_sentence(suite, RANDOM)
    assert "(4 Gymnasium envs nobody tuned for" in line and "PPO's on 2 of 3 envs;" in line
    assert "PPO-normalised IQM over 2 envs: ppo 1.00 [" in line and "dreamer 0.62 [" in line
