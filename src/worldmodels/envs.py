"""Build any Gymnasium environment (registered id or ``package.module:ClassName``) with the
toolkit's wrappers, and describe it with the :class:`EnvSpec` every model is built from.

Step accounting: ``info["env_steps"]`` on every step says how many ``step()`` calls of the env
as Gymnasium made it this agent step took (our frame skip repeats them). An Atari agent step
(4 frames) counts as one, the convention SB3, the RL zoo and the Atari-100k papers use.

Atari (``ALE/*-v5``) as the field runs it (Machado et al. 2018): sticky actions 0.25 and
episodes of up to 108,000 frames (ALE v5's own defaults), every action repeated for
``env.frame_skip`` frames (0 = 4) and the observation the pixel-wise max of the last two of
them (Mnih et al. 2015: sprites drawn on alternate frames stay visible), by Gymnasium's
``MaxAndSkipObservation``; then the frame is resized to ``env.image_size`` RGB like any other.
"""

from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from PIL import Image

from worldmodels.config import EnvConfig
from worldmodels.errors import UserError

_ALE_REGISTERED = False
ATARI_REPEAT = 4  # frames per Atari agent step where env.frame_skip is 0


def _register_ale() -> None:
    global _ALE_REGISTERED
    if not _ALE_REGISTERED:
        import ale_py

        gym.register_envs(ale_py)
        _ALE_REGISTERED = True


@dataclass(frozen=True)
class EnvSpec:
    """What the models need to know about an env, after wrappers."""

    env_id: str
    obs_kind: Literal["pixels", "vector"]
    obs_shape: tuple[int, ...]
    action_kind: Literal["discrete", "continuous"]
    action_dim: int
    """Number of actions (discrete) or action vector size (continuous)."""
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    reward_threshold: float | None
    max_episode_steps: int | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["obs_shape"] = list(self.obs_shape)
        d["action_low"] = list(self.action_low)
        d["action_high"] = list(self.action_high)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnvSpec:
        return cls(
            **{
                **d,
                "obs_shape": tuple(d["obs_shape"]),
                "action_low": tuple(d["action_low"]),
                "action_high": tuple(d["action_high"]),
            }
        )

    def shape_signature(self) -> dict[str, Any]:
        """The parts a checkpoint depends on."""
        return {
            "obs_kind": self.obs_kind,
            "obs_shape": list(self.obs_shape),
            "action_kind": self.action_kind,
            "action_dim": self.action_dim,
        }


class FrameSkip(gym.Wrapper):
    """Repeat an action ``skip`` times, summing rewards; stops early when the episode ends or
    after ``frame_cap`` frames (a run's budget: set by `cap_frames`, None for no cap)."""

    def __init__(self, env: gym.Env, skip: int):
        super().__init__(env)
        self.skip = skip
        self.frame_cap: int | None = None

    def step(self, action: Any):  # type: ignore[override]
        total, steps = 0.0, 0
        repeat = self.skip if self.frame_cap is None else max(1, min(self.skip, self.frame_cap))
        while True:
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            steps += 1
            if terminated or truncated or steps == repeat:
                break
        info = dict(info)
        info["env_steps"] = steps
        return obs, total, terminated, truncated, info


def cap_frames(env: gym.Env, frames: int) -> None:
    """Let the frame skip repeat the next actions at most ``frames`` times, so a run's last
    action does not overrun its real-step budget (no-op without the toolkit's frame skip)."""
    env.set_wrapper_attr("frame_cap", frames, force=False)


class CountSteps(gym.Wrapper):
    """Adds ``info["env_steps"] = 1`` where no frame-skip wrapper set it."""

    def step(self, action: Any):  # type: ignore[override]
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "env_steps" not in info:
            info = dict(info)
            info["env_steps"] = 1
        return obs, reward, terminated, truncated, info


class ResizeFrame(gym.ObservationWrapper):
    """RGB frames to ``size x size`` uint8 (bilinear, via Pillow: no OpenCV needed)."""

    def __init__(self, env: gym.Env, size: int):
        super().__init__(env)
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        frame = np.asarray(observation)
        if frame.ndim == 3 and frame.shape[-1] == 1:
            frame = np.repeat(frame, 3, axis=-1)
        if frame.shape[:2] == (self.size, self.size):
            return frame.astype(np.uint8, copy=False)
        img = Image.fromarray(frame.astype(np.uint8))
        return np.asarray(
            img.resize((self.size, self.size), Image.Resampling.BILINEAR), dtype=np.uint8
        )


class LimitIsEnd(gym.Wrapper):
    """The step limit's cut becomes a terminal step (``info["time_limit"] = True``): with the
    time in the observation the limit is part of the task, and nothing follows it."""

    def step(self, action: Any):  # type: ignore[override]
        obs, reward, terminated, truncated, info = self.env.step(action)
        if truncated and not terminated:
            info = dict(info)
            info["time_limit"] = True
            terminated, truncated = True, False
        return obs, reward, terminated, truncated, info


def _with_time(env: gym.Env, cfg: EnvConfig) -> gym.Env:
    """``env.time_feature``: gymnasium's ``TimeAwareObservation`` (the fraction of the env's
    own step limit used, last in the vector) and the limit as an end."""
    limit = env.spec.max_episode_steps if env.spec is not None else None
    if not _is_vector(env.observation_space) or not limit or cfg.max_episode_steps > 0:
        env.close()
        raise UserError(
            f"env.time_feature needs a vector env with its own step limit and no "
            f"env.max_episode_steps; {cfg.id} has observation space {env.observation_space}, "
            f"step limit {limit}, env.max_episode_steps={cfg.max_episode_steps}: set "
            f"env.time_feature=false"
        )
    return LimitIsEnd(gym.wrappers.TimeAwareObservation(env, normalize_time=True))


def _import_class(target: str) -> type:
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's module
        raise UserError(
            f"cannot import module '{module_name}' for env '{target}' "
            f"({type(exc).__name__}: {exc}); check it is installed and on "
            f"PYTHONPATH"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None or not inspect.isclass(cls):
        raise UserError(
            f"module '{module_name}' has no class '{class_name}'; use package.module:ClassName"
        ) from None
    return cls


def _make_raw(cfg: EnvConfig, render_mode: str | None) -> gym.Env:
    env_id = cfg.id
    if not env_id:
        raise UserError("no environment given; pass --env ID (see `worldmodels envs`)")
    kwargs: dict[str, Any] = {}
    if render_mode:
        kwargs["render_mode"] = render_mode
    if ":" in env_id and "/" not in env_id.split(":")[0]:
        cls = _import_class(env_id)
        params = inspect.signature(cls).parameters
        if "render_mode" not in params:
            kwargs.pop("render_mode", None)
        try:
            env = cls(**kwargs)
        except Exception as exc:
            raise UserError(
                f"constructing {env_id}() failed ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(env, gym.Env):
            raise UserError(f"{env_id} is not a gymnasium.Env subclass")
        return env
    if env_id == "worldmodels/PongObjects-v0" and "worldmodels/PongObjects-v0" not in gym.registry:
        gym.register(
            "worldmodels/PongObjects-v0", entry_point="worldmodels.pong_objects:PongObjects"
        )
    if is_atari(env_id):
        _register_ale()
        kwargs["frameskip"] = 1  # make_env repeats the action and max-pools the frames
    if cfg.discrete_actions:
        if not env_id.startswith("CarRacing"):
            raise UserError(f"env.discrete_actions is only available for CarRacing, not {env_id}")
        kwargs["continuous"] = False
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as exc:
        raise UserError(
            f"unknown or unusable environment '{env_id}' ({exc}); run "
            f"`worldmodels envs` for presets, or pass a registered Gymnasium id "
            f"or package.module:ClassName"
        ) from None


def make_env(cfg: EnvConfig, render_mode: str | None = None) -> gym.Env:
    """The env with the toolkit's wrappers: the time feature, frame skip, 64x64 RGB frames, a
    step limit."""
    env = _make_raw(cfg, render_mode)
    if cfg.time_feature:  # inside the frame skip: it counts the env's own steps
        env = _with_time(env, cfg)
    if is_atari(cfg.id):
        env = gym.wrappers.MaxAndSkipObservation(env, skip=cfg.frame_skip or ATARI_REPEAT)
    elif cfg.frame_skip > 1:
        env = FrameSkip(env, cfg.frame_skip)
    space = env.observation_space
    if _is_pixels(space):
        env = ResizeFrame(env, cfg.image_size)
    elif not _is_vector(space):
        env.close()
        raise UserError(
            f"env '{cfg.id}' has observation space {space}; supported are RGB "
            f"frames (H, W, 3) uint8 and 1-D Box vectors"
        )
    if not isinstance(env.action_space, (gym.spaces.Discrete, gym.spaces.Box)):
        env.close()
        raise UserError(
            f"env '{cfg.id}' has action space {env.action_space}; supported are Discrete and Box"
        )
    if cfg.max_episode_steps > 0:
        env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
    return CountSteps(env)


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/")


def env_steps_per_action(cfg: EnvConfig) -> int:
    """Real env steps one agent step counts as: the frame skip's repeats, 1 on Atari."""
    return 1 if is_atari(cfg.id) else max(1, cfg.frame_skip)


def _is_pixels(space: gym.Space) -> bool:
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 3
        and space.shape[-1] in (1, 3)
        and space.dtype == np.uint8
    )


def _is_vector(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 1


def spec_of(env: gym.Env, env_id: str) -> EnvSpec:
    obs_space = env.observation_space
    act = env.action_space
    if isinstance(act, gym.spaces.Discrete):
        kind: Literal["discrete", "continuous"] = "discrete"
        dim = int(act.n)
        low: tuple[float, ...] = (0.0,)
        high: tuple[float, ...] = (float(act.n - 1),)
    else:
        assert isinstance(act, gym.spaces.Box)
        kind = "continuous"
        dim = int(np.prod(act.shape))
        low = tuple(float(x) for x in np.asarray(act.low).reshape(-1))
        high = tuple(float(x) for x in np.asarray(act.high).reshape(-1))
    gym_spec = getattr(env, "spec", None)
    threshold = getattr(gym_spec, "reward_threshold", None) if gym_spec else None
    limit = None
    skip = 1  # a TimeLimit under a FrameSkip counts env steps: the agent sees 1/skip of them
    node: Any = env
    while node is not None:
        if isinstance(node, gym.wrappers.TimeLimit):
            limit = math.ceil(node._max_episode_steps / skip)
            break
        if isinstance(node, FrameSkip):
            skip *= node.skip
        node = getattr(node, "env", None)
    return EnvSpec(
        env_id=env_id,
        obs_kind="pixels" if _is_pixels(obs_space) else "vector",
        obs_shape=tuple(int(x) for x in obs_space.shape or ()),
        action_kind=kind,
        action_dim=dim,
        action_low=low,
        action_high=high,
        reward_threshold=float(threshold) if threshold is not None else None,
        max_episode_steps=limit,
    )


def probe(cfg: EnvConfig) -> EnvSpec:
    """Make the env once to validate the id and read its spec."""
    env = make_env(cfg)
    try:
        return spec_of(env, cfg.id)
    finally:
        env.close()


def random_action(spec: EnvSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.action_kind == "discrete":
        return np.asarray(rng.integers(spec.action_dim), dtype=np.int64)
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    return rng.uniform(low, high).astype(np.float32)


def action_to_env(action: np.ndarray, spec: EnvSpec) -> Any:
    if spec.action_kind == "discrete":
        return int(action)
    return np.asarray(action, dtype=np.float32)


def action_features(actions: np.ndarray, spec: EnvSpec) -> np.ndarray:
    """Actions as model inputs: one-hot for discrete, the vector itself for continuous."""
    if spec.action_kind == "discrete":
        idx = np.asarray(actions, dtype=np.int64).reshape(-1)
        out = np.zeros((idx.shape[0], spec.action_dim), dtype=np.float32)
        out[np.arange(idx.shape[0]), idx] = 1.0
        return out.reshape(*np.asarray(actions).shape, spec.action_dim)
    return np.asarray(actions, dtype=np.float32)


PRESET_NOTES: dict[str, str] = {
    "CartPole-v1": "vector obs, 2 actions; MLP VAE; the `make demo` env",
    "LunarLander-v3": "vector obs, 4 actions; MLP VAE",
    "CarRacing-v3": "pixels 96->64, 3 continuous (env.discrete_actions=true: 5 discrete); ConvVAE",
    "ALE/Pong-v5": "pixels 210x160->64, 6 actions, 4 frames a step (max of the last 2), "
    "sticky 0.25; ConvVAE",
    "ALE/Breakout-v5": "pixels 210x160->64, 4 actions, 4 frames a step (max of the last 2), "
    "sticky 0.25; ConvVAE",
    "worldmodels/PongObjects-v0": "Pong's object state from RAM, 4 frames x 10 features; "
    "identity V + residual M",
}
