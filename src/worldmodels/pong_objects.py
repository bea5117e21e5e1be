"""Object-state Pong (the Pong object-state dynamics model's setting): ``ALE/Pong-v5`` seen
through its RAM.

Per frame, 10 features: ball x, ball y, ball vx, ball vy, player y, player vy, enemy y,
enemy vy, player score, enemy score; the last ``stack`` frames (default 4) are concatenated,
oldest first, into one float vector (velocities are differences to the previous frame).
Register name: ``worldmodels/PongObjects-v0`` (``worldmodels collect --env
worldmodels/PongObjects-v0``).

RAM addresses (those of the AtariARI annotations, Anand et al. 2019), validated against the
rendered RGB frames (``tests/test_pong_objects.py`` repeats the check): over 600 steps of
random play, the ball's RAM x and y against the centroid of the ball's pixels (colour
236,236,236, rows 34-193) fit a line of slope 1.000 with correlation 1.0000 (offsets -48.5 and
-46.7 pixels); the paddles' RAM y against their pixels' mean row (player colour 92,186,92,
enemy 213,130,74) gave correlation 0.9996 and 0.9997. The scores match the game's (RAM 13 is
the enemy's, 14 the player's). While no ball is in play the ball's bytes hold stale values.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

RAM = {
    "ball_x": 49,
    "ball_y": 54,
    "player_y": 51,
    "enemy_y": 50,
    "enemy_score": 13,
    "player_score": 14,
}
FEATURES = (
    "ball_x",
    "ball_y",
    "ball_vx",
    "ball_vy",
    "player_y",
    "player_vy",
    "enemy_y",
    "enemy_vy",
    "player_score",
    "enemy_score",
)


class PongObjects(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}  # noqa: RUF012

    def __init__(
        self,
        render_mode: str | None = None,
        stack: int = 4,
        frameskip: int = 4,
        repeat_action_probability: float = 0.25,
    ):
        import ale_py

        gym.register_envs(ale_py)
        self.ale_env = gym.make(
            "ALE/Pong-v5",
            obs_type="ram",
            frameskip=frameskip,
            repeat_action_probability=repeat_action_probability,
            render_mode=render_mode,
        )
        self.render_mode = render_mode
        self.stack = stack
        self.action_space = self.ale_env.action_space
        n = stack * len(FEATURES)
        self.observation_space = gym.spaces.Box(-255.0, 255.0, (n,), np.float32)
        self._frames: deque[np.ndarray] = deque(maxlen=stack)
        self._last = np.zeros(4, np.float32)

    def _frame(self, ram: np.ndarray, first: bool) -> np.ndarray:
        pos = np.array(
            [ram[RAM["ball_x"]], ram[RAM["ball_y"]], ram[RAM["player_y"]], ram[RAM["enemy_y"]]],
            np.float32,
        )
        vel = np.zeros(4, np.float32) if first else pos - self._last
        self._last = pos
        return np.array(
            [
                pos[0],
                pos[1],
                vel[0],
                vel[1],
                pos[2],
                vel[2],
                pos[3],
                vel[3],
                ram[RAM["player_score"]],
                ram[RAM["enemy_score"]],
            ],
            np.float32,
        )

    def _obs(self) -> np.ndarray:
        return np.concatenate(list(self._frames)).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        ram, info = self.ale_env.reset(seed=seed, options=options)
        frame = self._frame(np.asarray(ram), first=True)
        for _ in range(self.stack):
            self._frames.append(frame)
        return self._obs(), info

    def step(self, action: Any):
        ram, reward, terminated, truncated, info = self.ale_env.step(action)
        self._frames.append(self._frame(np.asarray(ram), first=False))
        return self._obs(), float(reward), terminated, truncated, info

    def render(self):
        return self.ale_env.render()

    def close(self) -> None:
        self.ale_env.close()
