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


class KillOnceEnv(SlowEnv):
    """Kills its own process once, mid-episode, the first time any worker plays seed
    ``WM_KILL_SEED``; the marker file ``WM_KILL_MARKER`` records that it happened."""

    def reset(self, *, seed=None, options=None):
        import os
        from pathlib import Path

        marker = Path(os.environ["WM_KILL_MARKER"])
        self._kill = seed == int(os.environ["WM_KILL_SEED"]) and not marker.exists()
        return super().reset(seed=seed, options=options)

    def step(self, action):
        import os
        import signal
        from pathlib import Path

        if self._kill and self.t == 5:
            Path(os.environ["WM_KILL_MARKER"]).write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(action)
