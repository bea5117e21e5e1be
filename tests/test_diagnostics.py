"""`worldmodels diagnose`: per-k open-loop errors against baselines computed independently,
and its bad inputs (one line, exit 2)."""

import json

import numpy as np
import pytest

from worldmodels import pipeline
from worldmodels.cli import main
from worldmodels.data.loaders import LatentCache
from worldmodels.methods.stages import split

SETS = ["collect.episodes=16", "collect.val_fraction=0.4", "env.max_episode_steps=30"]


def _train(run_dir, extra=()):
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    argv += ["--quiet", "--skip-controller", "--no-eval"]
    for s in SETS:
        argv += ["--set", s]
    assert main([*argv, *extra]) == 0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("diag") / "cp"
    _train(d)
    return d


def test_diagnose_writes_errors_per_k_and_matches_an_independent_baseline(run_dir, capsys):
    assert main(["diagnose", "--run-dir", str(run_dir), "--horizon", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "open-loop prediction" in out and "diagnostics.json" in out
    result = json.loads((run_dir / "diagnostics.json").read_text())
    assert result["horizon"] == 4 and result["starts"] > 0
    for space in ("latent_mse", "obs_mse"):
        for name in ("model", "repeat_last", "constant_velocity"):
            assert len(result[space][name]) == 4
            assert all(np.isfinite(result[space][name]))
        ratio = np.asarray(result[f"{space}_ratio"]["repeat_last"])
        expected = np.asarray(result[space]["model"]) / np.asarray(result[space]["repeat_last"])
        assert np.allclose(ratio, expected)
    assert len(result["obs_mse_per_feature"]["model"]) == 4  # CartPole's 4 state variables
    assert all(0.0 <= a <= 1.0 for a in result["done_accuracy"])
    # regression (bug 11): starts only where a full horizon followed put every episode end at
    # k = H, so "never done" scored 1.0 at k < H; now ends appear at every k
    assert all(n > 0 for n in result["done_positives"])
    assert all(a < 1.0 for a in result["done_accuracy_constant"])
    assert all(0.0 <= b <= 1.0 for b in result["done_balanced_accuracy"])
    assert result["uncertainty"] == [0.0] * 4  # one MDN-RNN: no ensemble
    assert result["samples"] == 0  # the MDN-RNN's tau = 0 step is its mean: one path, no draws
    # repeat-last latent MSE recomputed from the latent cache by hand
    ctx = pipeline.open_run(run_dir, progress=False)
    _, val = split(ctx)
    cache = LatentCache(ctx.run.latents, ctx.run.digest("vision/best"))
    errs = {k: [] for k in range(1, 5)}
    for i in val:
        z = cache.read(i)["mu"]
        t_len = len(cache.read(i)["rewards"])
        for t in range(1, t_len):  # starts anywhere; steps past the end are masked
            for k in range(1, 5):
                if t + k <= t_len:
                    errs[k].append(np.mean((z[t] - z[t + k]) ** 2))
    by_hand = [float(np.mean(errs[k])) for k in range(1, 5)]
    assert np.allclose(result["latent_mse"]["repeat_last"], by_hand, rtol=1e-5)
    assert (run_dir / "plots" / "diagnostics_error_vs_k.png").stat().st_size > 0
    assert (run_dir / "plots" / "diagnostics_scatter.png").stat().st_size > 0
    # late starts only (bug 7's check): the starts are those with t >= 10, counted by hand
    assert main(["diagnose", "--run-dir", str(run_dir), "--horizon", "2", "--min-start", "10"]) == 0
    late = json.loads((run_dir / "diagnostics.json").read_text())
    lengths = [len(cache.read(i)["rewards"]) for i in val]
    assert late["min_start"] == 10 and late["starts"] == sum(max(n - 10, 0) for n in lengths)


def _fails(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and needle in err, err


def test_diagnose_bad_inputs(run_dir, tmp_path, capsys):
    _fails(capsys, ["diagnose", "--run-dir", str(run_dir), "--horizon", "500"], "--horizon 500")
    _fails(capsys, ["diagnose", "--run-dir", str(run_dir), "--horizon", "0"], "--horizon")
    _fails(capsys, ["diagnose", "--run-dir", str(run_dir), "--min-start", "0"], "--min-start")
    _fails(capsys, ["diagnose", "--run-dir", str(run_dir), "--min-start", "99"], "--min-start 99")
    no_m = tmp_path / "nom"
    _train(no_m, ["--skip-memory"])
    capsys.readouterr()
    _fails(capsys, ["diagnose", "--run-dir", str(no_m)], "no trained M")
    no_val = tmp_path / "noval"
    _train(no_val, ["--set", "collect.val_fraction=0"])
    capsys.readouterr()
    _fails(capsys, ["diagnose", "--run-dir", str(no_val)], "held-out split")
