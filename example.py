import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy

import worldmodels  # noqa: F401  registers worldmodels/Dream-v0 and worldmodels/Real-v0

dream = gym.make("worldmodels/Dream-v0", run_dir="runs/demo")   # the demo run's dream
agent = PPO("MlpPolicy", dream, seed=0).learn(20_000)          # imagined steps only
real = gym.make("worldmodels/Real-v0", run_dir="runs/demo")     # CartPole seen through V + M
mean, std = evaluate_policy(agent, real, n_eval_episodes=10)
print(f"PPO trained only in the dream, 10 real episodes: {mean:.1f} ± {std:.1f}")
