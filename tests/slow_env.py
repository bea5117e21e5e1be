"""A deliberately slow user env, given to the CLI as ``slow_env:SlowEnv`` (module:Class)."""

import time

import gymnasium as gym
import numpy as np


class SlowEnv(gym.Env):
    """A 1-D walk: 20 steps per episode, 10 ms per step, reward = -|x|."""

    def __init__(self, render_mode=None):
        self.observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.render_mode = render_mode
        self.t, self.x = 0, 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.x = 0, float(self.np_random.uniform(-1, 1))
        return np.array([self.x, 0.0], np.float32), {}

    def step(self, action):
        time.sleep(0.01)
        self.t += 1
        self.x += 0.1 if action == 1 else -0.1
        obs = np.array([self.x, self.t / 20], np.float32)
        return obs, -abs(self.x), False, self.t >= 20, {}
