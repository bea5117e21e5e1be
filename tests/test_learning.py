"""Learning checks that take minutes: each method must really learn (``make test-slow``)."""

import json

import pytest

from worldmodels.cli import main

RANDOM_CARTPOLE = 22.3  # mean return of the random policy on CartPole-v1 (README, 300 episodes)


@pytest.mark.slow
def test_classic_solves_cartpole(tmp_path):
    """The demo's recipe: V -> M -> CMA-ES C reaches the solved line (random: ~22)."""
    run_dir = tmp_path / "classic"
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--seed", "0"]
    assert main([*argv, "--quiet", "--episodes", "20"]) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["mean_return"] >= 475 > 20 * RANDOM_CARTPOLE


@pytest.mark.slow
def test_wm_ppo_beats_random_on_cartpole(tmp_path):
    """wm-ppo's CartPole preset on a third of its budget: at least 4x the random policy."""
    run_dir = tmp_path / "wmppo"
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--seed", "0"]
    argv += ["--method", "wm-ppo", "--set", "ac.total_steps=6000", "--episodes", "20"]
    assert main([*argv, "--quiet"]) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["mean_return"] >= 4 * RANDOM_CARTPOLE
