"""The model-free PPO baseline (Stable-Baselines3): it learns, its checkpoints are the
toolkit's weights-only files, a killed run resumes, and it logs a learning curve."""

import json
import os
import signal
import subprocess
import sys

import torch

from worldmodels.cli import main
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
