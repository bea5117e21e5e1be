"""The model-free PPO baseline (Stable-Baselines3): it learns, its checkpoints are the
toolkit's weights-only files, a killed run resumes, it logs a learning curve, and with
observation normalisation the statistics are checkpointed and applied where the policy acts."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from worldmodels.cli import main
from worldmodels.errors import UserError
from worldmodels.runs import RunDir


def _cmd(run_dir, total, resume=False):
    cmd = [sys.executable, "-m", "worldmodels", "train", "--run-dir", str(run_dir), "--quiet"]
    if resume:
        return [*cmd, "--resume", "--no-eval"]
    cmd += ["--env", "CartPole-v1", "--method", "ppo", "--no-eval"]
    return [*cmd, "--set", f"ppo.total_steps={total}", "--set", "ppo.target_return=1e9"]


def test_ppo_learns_cartpole_and_writes_the_common_layout(tmp_path):
    run_dir = tmp_path / "ppo"
    argv = ["train", "--env", "CartPole-v1", "--method", "ppo", "--run-dir", str(run_dir)]
    argv += ["--quiet", "--episodes", "10", "--set", "ppo.total_steps=15000"]
    assert main(argv) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    # a random policy scores ~22; rl-zoo's PPO is far above it after 15,000 steps
    assert result["method"] == "ppo" and result["mean_return"] > 150
    prog = torch.load(run_dir / "checkpoints/ppo/last.pt", weights_only=True)["progress"]
    assert result["real_env_steps"] == prog["real_env_steps"]
    train_steps = prog["real_env_steps"] - prog["eval_steps"]
    assert prog["eval_steps"] > 0 and train_steps < 15000 + 8  # the preset evaluates
    assert train_steps >= 15000 or prog["score"] >= 475  # the budget, or the target
    best = torch.load(run_dir / "checkpoints/ppo/best.pt", weights_only=True)
    assert best["model"]["name"] == "sb3_ppo"
    curve = RunDir(run_dir).curve()
    assert len(curve) > 20 and curve[-1][0] == result["real_env_steps"]
    steps = [s for s, _ in curve]
    assert steps == sorted(steps)
    assert curve[-1][1] > curve[0][1]  # the training episodes got longer
    assert any((run_dir / "tb").iterdir())


def test_ppo_best_agent_is_the_latest_until_a_score_is_measured(tmp_path):
    """No 1,000 training episodes finish in 512 steps, so no score is ever measured: the best
    checkpoint must be the trained agent at the end, not the first rollout's untrained one."""
    run_dir = tmp_path / "ppo"
    sets = ["ppo.stop_window=1000", "ppo.n_envs=2", "ppo.n_steps=64", "ppo.batch_size=64"]
    argv = [*_cmd(run_dir, 512)[3:], *(x for s in sets for x in ("--set", s))]
    assert main(argv) == 0
    best, last = (torch.load(run_dir / f"checkpoints/ppo/{k}.pt", weights_only=True)
                  for k in ("best", "last"))  # fmt: skip
    assert best["progress"]["score"] == -float("inf")
    assert best["progress"]["num_timesteps"] == last["progress"]["num_timesteps"] >= 512
    for k, v in last["model"]["state_dict"].items():
        assert torch.equal(v, best["model"]["state_dict"][k]), k


def _eval_ppo_state(run_dir, state_dict, seeds):
    """The deterministic policy of a PPO state dict on the given seeds, independently of
    training: (mean return, env steps)."""
    from worldmodels.data.rollout import EnvPool, run_batch
    from worldmodels.envs import probe
    from worldmodels.training.ppo_baseline import Sb3Policy, build_ppo, make_vec_env

    cfg = RunDir(run_dir).load_config()
    spec = probe(cfg.env)
    venv = make_vec_env(cfg, 1, 0)
    model = build_ppo(cfg, spec, venv, torch.device("cpu"))
    venv.close()
    model.policy.load_state_dict(state_dict)
    pool = EnvPool(cfg.env)
    result = run_batch(pool, spec, Sb3Policy(model, 1), seeds)
    pool.close()
    return float(result.returns.mean()), result.env_steps


def test_ppo_evaluations_are_the_curve_the_stop_test_and_counted_steps(tmp_path):
    from worldmodels.seeding import Stream, reset_seeds

    run_dir = tmp_path / "ppo"
    argv = ["train", "--env", "CartPole-v1", "--method", "ppo", "--run-dir", str(run_dir)]
    sets = ["ppo.n_envs=2", "ppo.n_steps=16", "ppo.batch_size=16", "ppo.total_steps=64"]
    sets += ["ppo.eval_every=1", "ppo.eval_episodes=3", "ppo.target_return=1e9"]
    argv += ["--quiet", "--no-eval", *[x for s in sets for x in ("--set", s)]]
    assert main(argv) == 0
    last = torch.load(run_dir / "checkpoints/ppo/last.pt", weights_only=True)
    prog = last["progress"]
    assert prog["rollouts"] == 2 and prog["complete"]
    # the run stopped at the second rollout's last step, right after evaluating the policy it
    # kept: evaluating that policy again on the same seeds gives the last curve point
    seeds = reset_seeds(0, Stream.SELECT, 2 * 1000, 3)
    score, steps = _eval_ppo_state(run_dir, last["model"]["state_dict"], seeds)
    curve = RunDir(run_dir).curve()
    assert len(curve) == 2 and curve[-1][1] == score == prog["score"]
    assert prog["real_env_steps"] == 64 + prog["eval_steps"] == curve[-1][0]
    assert curve[0][0] == 32 + prog["eval_steps"] - steps  # the first evaluation's steps
    # a reachable target stops at the first evaluation, before 20 training episodes finish
    run2 = tmp_path / "ppo2"
    argv2 = [*argv[:6], str(run2), *argv[7:]]
    argv2[argv2.index("ppo.target_return=1e9")] = "ppo.target_return=5"
    assert main(argv2) == 0
    prog2 = torch.load(run2 / "checkpoints/ppo/last.pt", weights_only=True)["progress"]
    assert prog2["rollouts"] == 1 and prog2["score"] >= 5
    assert prog2["real_env_steps"] - prog2["eval_steps"] == 32
    # ... and the finished run is not reopened by --resume
    assert main(["train", "--run-dir", str(run2), "--resume", "--quiet", "--no-eval"]) == 0
    again = torch.load(run2 / "checkpoints/ppo/last.pt", weights_only=True)["progress"]
    assert again["real_env_steps"] == prog2["real_env_steps"]


def test_ppo_killed_mid_training_resumes_to_its_budget(tmp_path):
    run_dir = tmp_path / "ppo"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kill = {**env, "WORLDMODELS_KILL_AFTER_SAVE": "ppo/last:2"}  # after the second rollout
    assert subprocess.run(_cmd(run_dir, 12_000), env=kill).returncode == -signal.SIGKILL
    last = run_dir / "checkpoints/ppo/last.pt"
    killed = torch.load(last, weights_only=True)["progress"]
    assert not killed["complete"] and killed["real_env_steps"] < 12_000
    refused = subprocess.run(
        [*_cmd(run_dir, 12_000)[:-4], "--no-eval"], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "--resume" in refused.stderr
    done = subprocess.run(_cmd(run_dir, 12_000, resume=True), env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    final = torch.load(last, weights_only=True)["progress"]
    assert final["complete"] and final["real_env_steps"] >= 12_000
    assert final["num_timesteps"] > killed["num_timesteps"]
    # the curve continues past the kill
    assert RunDir(run_dir).curve()[-1][0] == final["real_env_steps"]


def test_ppo_on_pixels_with_frame_stack_and_reward_normaliser_resumes_and_evaluates(tmp_path):
    run_dir = tmp_path / "car"
    sets = [
        "env.max_episode_steps=20",
        "ppo.n_envs=1",
        "ppo.n_steps=16",
        "ppo.batch_size=8",
        "ppo.n_epochs=1",
        "ppo.total_steps=64",
        "evaluate.episodes=1",
    ]
    argv = ["train", "--env", "CarRacing-v3", "--method", "ppo", "--run-dir", str(run_dir)]
    argv += ["--quiet"] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 0  # rl-zoo's CarRacing preset: CnnPolicy, 2 frames, reward scaling
    last = torch.load(run_dir / "checkpoints/ppo/last.pt", weights_only=True)
    assert last["progress"]["complete"] and last["progress"]["real_env_steps"] >= 64
    assert last["ret_rms"]["count"] > 1  # the reward normaliser's statistics are kept
    result = json.loads((run_dir / "eval.json").read_text())
    assert (
        result["episodes"] == 1 and result["real_env_steps"] == last["progress"]["real_env_steps"]
    )
    # a larger budget on the same run continues from the saved state
    more = ["train", "--run-dir", str(run_dir), "--quiet", "--no-eval"]
    assert main([*more, "--set", "ppo.total_steps=96"]) == 0
    again = torch.load(run_dir / "checkpoints/ppo/last.pt", weights_only=True)["progress"]
    assert (
        again["real_env_steps"] >= 96 and again["num_timesteps"] > last["progress"]["num_timesteps"]
    )


# rl-zoo's `normalize: true` on a small CartPole run: 2 envs x 16 steps a rollout
NORM_SETS = ["ppo.normalize_obs=true", "ppo.normalize_reward=true", "ppo.n_envs=2"]
NORM_SETS += ["ppo.n_steps=16", "ppo.batch_size=16", "ppo.n_epochs=2", "ppo.target_return=1e9"]


def _norm_cmd(run_dir, resume=False):
    cmd = [sys.executable, "-m", "worldmodels", "train", "--run-dir", str(run_dir), "--quiet"]
    cmd += ["--env", "CartPole-v1", "--method", "ppo", "--no-eval", "--set", "threads=1"]
    cmd += [x for s in [*NORM_SETS, "ppo.total_steps=256"] for x in ("--set", s)]
    return cmd + (["--resume"] if resume else [])


def test_ppo_observation_statistics_are_checkpointed_and_go_on_after_a_kill(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert subprocess.run(_norm_cmd(full), env=env).returncode == 0
    kill = {**env, "WORLDMODELS_KILL_AFTER_SAVE": "ppo/last:3"}  # after the third rollout
    assert subprocess.run(_norm_cmd(cut), env=kill).returncode == -signal.SIGKILL
    killed = torch.load(cut / "checkpoints/ppo/last.pt", weights_only=True)
    assert killed["progress"]["num_timesteps"] == 3 * 32 and not killed["progress"]["complete"]
    # RunningMeanStd starts at count 1e-4, then counts the 2 reset observations and each step's 2
    assert killed["obs_rms"]["count"] == pytest.approx(1e-4 + 2 + 96)
    assert killed["obs_rms"]["mean"].shape == (4,) and killed["ret_rms"]["count"] > 1
    best = torch.load(cut / "checkpoints/ppo/best.pt", weights_only=True)
    assert "obs_rms" in best and "ret_rms" not in best  # the policy's inputs; training state
    done = subprocess.run(_norm_cmd(cut, resume=True), env=env, capture_output=True)
    assert done.returncode == 0, done.stderr[-2000:]
    a = torch.load(full / "checkpoints/ppo/last.pt", weights_only=True)
    b = torch.load(cut / "checkpoints/ppo/last.pt", weights_only=True)
    assert a["progress"]["complete"] and b["progress"]["complete"]
    steps = b["progress"]["num_timesteps"]
    assert steps == a["progress"]["num_timesteps"] >= 256
    # the resumed statistics went on from the killed run's: its count is the uninterrupted
    # run's plus the resumed run's fresh reset of its 2 envs (a fresh start would have counted
    # only the steps since the kill)
    assert a["obs_rms"]["count"] == pytest.approx(1e-4 + 2 + steps)
    assert b["obs_rms"]["count"] == pytest.approx(killed["obs_rms"]["count"] + 2 + steps - 96)
    assert b["obs_rms"]["count"] == pytest.approx(a["obs_rms"]["count"] + 2)
    assert b["ret_rms"]["count"] == pytest.approx(killed["ret_rms"]["count"] + steps - 96)


def test_ppo_evaluations_see_observations_normalised_with_the_checkpoints_statistics(
    tmp_path, monkeypatch
):
    import numpy as np

    import worldmodels
    from worldmodels.data.rollout import EnvPool, run_batch
    from worldmodels.envs import probe
    from worldmodels.seeding import Stream, reset_seeds
    from worldmodels.training import ppo_baseline
    from worldmodels.training.ppo_baseline import (
        ObsNormaliser,
        Sb3Policy,
        build_ppo,
        load_ppo_policy,
        make_vec_env,
    )

    evaluated = []  # the normaliser of each periodic evaluation's policy

    class Recorded(Sb3Policy):
        def __init__(self, model, frame_stack, norm=None):
            super().__init__(model, frame_stack, norm)
            evaluated.append(norm)

    monkeypatch.setattr(ppo_baseline, "Sb3Policy", Recorded)
    run_dir = tmp_path / "ppo"
    argv = ["train", "--env", "CartPole-v1", "--method", "ppo", "--run-dir", str(run_dir)]
    sets = [*NORM_SETS, "ppo.total_steps=64", "ppo.eval_every=1", "ppo.eval_episodes=3"]
    argv += ["--quiet", "--no-eval", *[x for s in sets for x in ("--set", s)]]
    assert main(argv) == 0
    monkeypatch.undo()
    run = RunDir(run_dir)
    cfg, spec, cpu = run.load_config(), probe(run.load_config().env), torch.device("cpu")
    # the periodic evaluation normalised with the statistics of its moment (the second
    # rollout's last step), which the checkpoints keep: evaluating again gives its score
    last = torch.load(run_dir / "checkpoints/ppo/last.pt", weights_only=True)
    assert len(evaluated) == 2 and evaluated[-1] is not None
    np.testing.assert_array_equal(evaluated[-1].mean, last["obs_rms"]["mean"].numpy())
    np.testing.assert_array_equal(evaluated[-1].var, last["obs_rms"]["var"].numpy())
    venv = make_vec_env(cfg, 1, 0)
    model = build_ppo(cfg, spec, venv, cpu)
    venv.close()
    model.policy.load_state_dict(last["model"]["state_dict"])
    pool = EnvPool(cfg.env)
    seeds = reset_seeds(0, Stream.SELECT, 2 * 1000, 3)
    policy = Sb3Policy(model, 1, ObsNormaliser.of(last["obs_rms"]))
    assert run_batch(pool, spec, policy, seeds).returns.mean() == last["progress"]["score"]
    best = run.load("ppo/best")
    seeds = reset_seeds(0, Stream.SELECT, best["progress"]["rollouts"] * 1000, 3)
    policy = load_ppo_policy(run, cfg, spec, cpu)  # what evaluate and --video run
    assert run_batch(pool, spec, policy, seeds).returns.mean() == best["progress"]["score"]
    pool.close()
    # by hand: a best checkpoint whose statistics are known; the method's policy factory (what
    # `worldmodels evaluate`, --video and the API act with) sees (obs - mean) / sqrt(var + 1e-8)
    # clipped to [-10, 10]
    mean, var = np.array([1.0, -1.0, 0.5, 0.0]), np.array([4.0, 0.25, 1e-6, 1.0])
    best["obs_rms"] = {"mean": torch.tensor(mean), "var": torch.tensor(var), "count": 50.0}
    torch.save(best, run_dir / "checkpoints/ppo/best.pt")
    agent = worldmodels.open_run(run_dir).agent()
    seen = []

    def predict(obs, deterministic):
        seen.append(obs)
        return np.zeros(len(obs), np.int64), None

    agent._policy.model.predict = predict
    agent.act(np.array([3.0, -1.5, 0.6, -20.0], np.float32))
    expected = [(3 - 1) / np.sqrt(4 + 1e-8), -0.5 / np.sqrt(0.25 + 1e-8), 10.0, -10.0]
    np.testing.assert_allclose(seen[0], [expected], rtol=1e-6)
    assert seen[0].dtype == np.float32
    # a checkpoint of a normalising run without its statistics is refused, in one line
    del best["obs_rms"]
    torch.save(best, run_dir / "checkpoints/ppo/best.pt")
    with pytest.raises(UserError, match="no observation statistics"):
        load_ppo_policy(run, cfg, spec, cpu)


def test_ppo_normalises_vector_observations_only(tmp_path, capsys):
    argv = ["train", "--env", "CarRacing-v3", "--method", "ppo", "--quiet"]
    argv += ["--run-dir", str(tmp_path / "car"), "--set", "ppo.normalize_obs=true"]
    assert main(argv) == 2
    assert "ppo.normalize_obs normalises vector observations" in capsys.readouterr().err
