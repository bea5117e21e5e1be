"""Write one episode of an agent as an mp4 or gif (imageio; mp4 through imageio-ffmpeg)."""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from worldmodels.config import EnvConfig
from worldmodels.data.rollout import Policy
from worldmodels.envs import EnvSpec, action_to_env, make_env
from worldmodels.errors import UserError
from worldmodels.runs import atomic_write_bytes

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # render offscreen, no display needed


FPS = 30
"""Frames per second of the mp4 (the gif keeps every second frame at half that rate)."""
MAX_FRAMES = 2000
"""Frames recorded at most (an episode longer than this is cut)."""


def record_episode(
    env_cfg: EnvConfig, spec: EnvSpec, policy: Policy, seed: int, path: Path
) -> Path:
    """One episode of ``policy`` rendered to ``path`` (.mp4 or .gif), written atomically."""
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise UserError(f"--video {path}: the file must end in .mp4 or .gif")
    env = make_env(env_cfg, render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=seed)
        state = policy.reset(1)
        frames: list = [np.asarray(env.render())]
        while len(frames) < MAX_FRAMES:
            action, state = policy.act(obs[None], state)
            obs, _, term, trunc, _ = env.step(action_to_env(action[0], spec))
            frames.append(np.asarray(env.render()))
            if term or trunc:
                break
    finally:
        env.close()
    if path.suffix.lower() == ".gif":
        data = imageio.mimwrite("<bytes>", frames[::2], format="gif", duration=2000 / FPS, loop=0)
    else:
        data = imageio.mimwrite("<bytes>", frames, format="mp4", fps=FPS, macro_block_size=1)
    atomic_write_bytes(path, data)
    return path
