"""docs/results.md and the README's results table are exactly what benchmarks/tables.py makes
of benchmarks/results/: a record added without regenerating them, or a hand edit, fails here
(fix: `.venv/bin/python benchmarks/tables.py`)."""

import dataclasses
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIX = "run `.venv/bin/python benchmarks/tables.py` and commit what it writes"


@pytest.fixture(scope="module")
def made():
    if str(ROOT / "benchmarks") not in sys.path:  # as when run as a script
        sys.path.insert(0, str(ROOT / "benchmarks"))
    tables = importlib.import_module("tables")
    return tables, tables.rows_of(tables.load())


def first_difference(committed: str, generated: str) -> str:
    pairs = zip(committed.splitlines(), generated.splitlines(), strict=False)
    for i, (a, b) in enumerate(pairs, 1):
        if a != b:
            return f"line {i}: committed {a[:120]!r}, generated {b[:120]!r}"
    return "one is a prefix of the other"


def test_docs_results_page_is_the_generated_one(made):
    tables, rows = made
    generated = tables.results_page(
        rows, tables.random_scores(), tables.dream_transfer.load(), tables.prediction.load()
    )
    committed = (ROOT / "docs" / "results.md").read_text()
    assert committed == generated, (
        f"docs/results.md differs ({first_difference(committed, generated)}): {FIX}"
    )
    assert (ROOT / "docs" / "img" / "learning-curves.png").exists()


def test_the_readme_results_table_is_the_generated_one(made):
    tables, rows = made
    readme = (ROOT / "README.md").read_text()
    if tables.BEGIN not in readme and tables.END not in readme:
        pytest.skip("README.md has no results-table markers yet")
    generated = tables.with_block(readme, tables.readme_block(rows, tables.random_scores()))
    assert readme == generated, (
        f"README.md's results table differs ({first_difference(readme, generated)}): {FIX}"
    )


def test_only_the_lines_between_the_markers_are_replaced(made):
    tables, _ = made
    text = f"a\n{tables.BEGIN}\nold\nlines\n{tables.END}\nb\n"
    assert tables.with_block(text, "new\n") == f"a\n{tables.BEGIN}\nnew\n{tables.END}\nb\n"
    for broken in ("a\nb\n", f"a\n{tables.BEGIN}\nb\n", f"{tables.END}\n{tables.BEGIN}\n"):
        with pytest.raises(tables.NoMarkers, match=r"README\.md needs one line"):
            tables.with_block(broken, "new\n")


def test_every_record_is_one_run_with_a_score_and_its_steps_to_the_threshold(made):
    _, rows = made
    for env_rows in rows.values():
        for row in env_rows:
            for run in row.runs:
                assert run.command.startswith("python benchmarks/") and run.episodes > 0
                assert run.curve is not None or run.summary_only


def test_dream_transfer_keeps_one_result_per_key_and_knows_a_run_trained_again(made, tmp_path):
    """Results are merged into what is kept (another process's rows survive, the same key is
    replaced), and a run's fingerprint moves with its weights."""
    transfer = made[0].dream_transfer
    path = tmp_path / "transfer.json.gz"

    def row(seed: int, real: float) -> dict:
        how = {"tau": 1.0, "horizon": 64}
        return {"run": "runs/r_s100", "how": how, "seed": seed, "dream_steps": 10, "real": real}

    transfer.keep(row(0, 1.0), path)
    transfer.keep(row(1, 2.0), path)  # as from a second process: the first row stays
    kept = transfer.keep(row(0, 3.0), path)  # the same key: replaced
    assert sorted((r["seed"], r["real"]) for r in kept) == [(0, 3.0), (1, 2.0)]
    assert transfer.load(path) == kept
    run = tmp_path / "run"
    (run / "checkpoints" / "m").mkdir(parents=True)
    (run / "checkpoints" / "m" / "best.pt").write_bytes(b"weights")
    before = transfer.fingerprint(run)
    assert transfer.fingerprint(run) == before
    (run / "checkpoints" / "m" / "best.pt").write_bytes(b"trained again")
    assert transfer.fingerprint(run) != before


def test_the_prediction_table_sets_each_k_and_feature_beside_repeat_last(made):
    """Hand-made errors over 2 steps ahead: overall 0.1 then 0.4 against repeat-last's 0.2 and
    0.2 (÷ 0.5 and 2: it beats repeat-last at 1 of 2 ks, worst at k = 2); a feature at 0.3 and
    0.3 against 0.1 and 0.6 (÷ 3 and 0.5)."""
    prediction = importlib.import_module("prediction")
    row = {
        "run": "runs/r_s5", "env": "CartPole-v1", "samples": 16, "prediction_samples": 16,
        "horizon": 2, "run_return": 491.2,
        "obs_mse": {"model": [0.1, 0.4], "repeat_last": [0.2, 0.2]},
        "obs_mse_per_feature": {"model": [[0.3, 0.3]], "repeat_last": [[0.1, 0.6]]},
    }  # fmt: skip
    line = prediction.table([row]).splitlines()[-1]
    assert line == (
        "| r_s5 (CartPole-v1; 491.2) | mean of 16 sampled rollouts | 0.1 / 0.4 | 0.5 / 2 | "
        "2 (2) | 1 of 2 | 0: 3 / 0.5 |"
    )
    tau0 = prediction.table([row | {"prediction_samples": 0, "run": "runs/r_s100"}])
    assert "(CartPole-v1, tuning; 491.2) | τ = 0 path |" in tau0


def test_atari_scores_are_also_human_normalised(made):
    """Pong's random -20.7 and human 14.6: a seed at -3.05 is half way, 14.6 is 1.00; the IQM
    of 4 seeds is the mean of the middle two, so normalising it is normalising their mean."""
    tables, _ = made

    def run(seed: int, score: float):
        return tables.Run(
            env="ALE/Pong-v5", method="dreamer", seed=seed, command="python benchmarks/x.py",
            date="2026-12-07", machine="m", threads=1, settings=[], mean_return=score,
            std_return=0.0, episodes=100, real_env_steps=100_000, wall_seconds=1.0,
            steps_to_threshold=None, curve=None,
        )  # fmt: skip

    rows = tables.rows_of([run(0, -20.7), run(1, -3.05), run(2, 14.6), run(3, 21.0)])
    text = tables.human_normalised(rows["ALE/Pong-v5"])
    assert "random -20.7, human 14.6" in text
    iqm_line = next(line for line in text.splitlines() if line.startswith("| dreamer"))
    assert iqm_line.startswith("| dreamer | 0.75 [") and iqm_line.endswith("| 1.18 |")
    cart = tables.rows_of([dataclasses.replace(run(0, 1.0), env="CartPole-v1")])
    assert tables.human_normalised(cart["CartPole-v1"]) == ""


def test_dream_drift_compares_the_running_real_episodes_with_every_dream_at_each_step():
    """Step 2's real mean is over the two episodes still running (1 and 3: 2.0), the dream's
    over all three dreams (0.5); the last row is each real episode's final observation."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    drift = importlib.import_module("dream_drift")
    import numpy as np

    real = [
        np.array([[0.0], [1.0]]),
        np.array([[0.0], [1.0], [1.0]]),
        np.array([[0.0], [2.0], [3.0]]),
    ]
    dream = np.array([[[0.0], [0.0], [0.0]], [[0.5], [0.5], [0.5]], [[0.5], [0.0], [1.0]]])
    ends = np.array([[0.1, 0.2, 0.3], [0.0, 0.5, 1.0]])
    lines = drift.table(real, dream, ends, [0, 2]).splitlines()
    assert lines[2] == "| 0 | 3 | +0.00 / +0.00 | nan |"
    assert lines[3] == "| 2 | 2 | +2.00 / +0.50 | 0.5000 |"
    assert lines[4] == "| real last step (mean length 1.7) | 3 | +1.67 (|·| 1.67) | |"
