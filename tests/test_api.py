"""The public API: a finished run opened from Python -- its agent acting on real
observations, its world model imagining, its envs -- and the dream registered with Gymnasium,
where a trainer this project did not write (Stable-Baselines3's PPO) learns in
``worldmodels/Dream-v0`` and is evaluated for real in ``worldmodels/Real-v0``."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from cli_runs import episode_return, train_debug
from gymnasium.utils.env_checker import check_env

import worldmodels
from worldmodels.dream import DreamEnv

# CartPole under --preset debug (episodes capped at 40 steps): V + M trained on 100 random
# episodes, a CMA-ES controller of 2 generations (the agent the API hands out)
SETS = ["collect.episodes=100", "vision.epochs=10", "memory.epochs=30", "threads=1"]
SETS += ["controller.generations=2", "controller.population=4", "controller.eval_episodes=2"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    where = tmp_path_factory.mktemp("api") / "run"
    assert train_debug(where, SETS, "--no-eval") == 0
    return where


def test_a_foreign_trainer_learns_in_the_dream_and_acts_for_real(run_dir):
    from stable_baselines3 import PPO

    torch.manual_seed(0)
    dream = gym.make("worldmodels/Dream-v0", run_dir=str(run_dir), tau=1.0)
    real = gym.make("worldmodels/Real-v0", run_dir=str(run_dir))
    assert dream.observation_space == real.observation_space
    assert dream.action_space == real.action_space
    model = PPO("MlpPolicy", dream, seed=0, n_steps=512, batch_size=64, verbose=0)
    model.learn(6000)  # dream steps only: no real step
    trained = [
        episode_return(real, lambda o: model.predict(o, deterministic=True)[0], 1000 + k)
        for k in range(10)
    ]
    rng = np.random.default_rng(0)
    random = [episode_return(real, lambda o: int(rng.integers(2)), 1000 + k) for k in range(10)]
    # measured: 40.0 (every episode reaches the debug cap) against a random policy's ~20
    assert np.mean(trained) >= 1.5 * np.mean(random), (trained, random)


def test_a_run_opened_from_python_gives_its_agent_model_and_envs(run_dir):
    run = worldmodels.open_run(run_dir)
    assert run.config.env.id == "CartPole-v1" and run.spec.action_kind == "discrete"
    env = gym.make("CartPole-v1", max_episode_steps=40)
    obs, _ = env.reset(seed=7)
    agent, state, steps = run.agent(), None, 0
    done = False
    while not done:  # the agent acts on raw observations, carrying its recurrent state
        action, state = agent.act(obs, state)
        obs, _, terminated, truncated, _ = env.step(int(action))
        done, steps = terminated or truncated, steps + 1
    assert steps >= 1
    imagined = run.imagine(env.reset(seed=3)[0], [0, 1, 0, 1])
    assert imagined.features.shape == (1, 5, run.world.feature_dim)
    assert imagined.rewards.shape == (1, 4) and torch.all(imagined.done_prob <= 1)
    # the same settings through Gymnasium: plain envs pass its checker ...
    check_env(gym.make("worldmodels/Dream-v0", run_dir=str(run_dir)).unwrapped)
    check_env(gym.make("worldmodels/Real-v0", run_dir=str(run_dir)).unwrapped)
    # ... and make_vec gives the batched dream (one forward pass of M per step)
    vec = gym.make_vec("worldmodels/Dream-v0", num_envs=4, run_dir=str(run_dir), horizon=5)
    assert isinstance(vec.unwrapped, DreamEnv) and vec.num_envs == 4
    obs, _ = vec.reset(seed=0)
    for _ in range(5):
        obs, _, terminated, truncated, _ = vec.step(np.zeros(4, dtype=np.int64))
    assert obs.shape == (4, run.world.feature_dim) and (terminated | truncated).all()


def test_opening_a_missing_run_is_one_clear_error(tmp_path):
    from worldmodels.errors import UserError

    with pytest.raises(UserError, match="is not a run directory"):
        worldmodels.open_run(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_opening_a_run_leaves_the_callers_math_threads_alone(run_dir):
    """The run records one math thread; a library caller's own setting stays (a call that
    set it behind the caller's back made one LSTM step 160x slower beside another job)."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        worldmodels.open_run(run_dir)
        gym.make("worldmodels/Dream-v0", run_dir=str(run_dir))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
