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

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # render offscreen, no display needed


def record_episode(
    env_cfg: EnvConfig,
    spec: EnvSpec,
    policy: Policy,
    seed: int,
    path: Path,
    fps: int = 30,
    max_frames: int = 2000,
) -> Path:
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise UserError(f"--video {path}: the file must end in .mp4 or .gif")
    env = make_env(env_cfg, render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=seed)
        state = policy.reset(1)
        frames: list = [np.asarray(env.render())]
        while len(frames) < max_frames:
            action, state = policy.act(obs[None], state)
            obs, _, term, trunc, _ = env.step(action_to_env(action[0], spec))
            frames.append(np.asarray(env.render()))
            if term or trunc:
                break
    finally:
        env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, frames[::2], duration=2000 / fps, loop=0)
    else:
        imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
    return path
