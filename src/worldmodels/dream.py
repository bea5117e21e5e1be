"""The dream: the world model (V + M with its reward and done heads) as a Gymnasium env.

A dream episode starts from a *real* state: the latent z_t of a stored episode and the memory
state M had reached there, teacher-forced along that episode's real latents and actions
(``StartStates``). From there it steps in latent space: one batched forward pass of M per
step for all envs, z_{t+1} sampled at temperature tau, reward from the reward head, the
episode ends where the done head says so (p > 0.5, or a Bernoulli draw), at the horizon, or,
when asked, where an ensemble M disagrees more than it does on the real data (MOReL's halt).
The observation is the controller's feature vector [z, h].

``DreamEnv`` is a ``gymnasium.vector.VectorEnv`` (same-step autoreset: the final observation
of an ended env is in ``info["final_obs"]``); ``DreamSingleEnv`` is the one-env form and passes
``gymnasium.utils.env_checker.check_env``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

from worldmodels.config import Config
from worldmodels.data.loaders import LatentCache
from worldmodels.envs import EnvSpec
from worldmodels.world_model import WorldModel

DONE_MODES = ("threshold", "sample")
OBSERVATIONS = ("features", "decoded")
"""What a dream (and ``Real-v0``) shows a policy: the controller features [z, h], or V's
decoding of z into the env's own observation space (its vector, or its frame)."""


@dataclass
class StartStates:
    """A bank of real states to start dreams from: z [N, Z], the memory state (a tuple of
    [N, ...] tensors) and whether each is an episode's first step; and M's ensemble
    disagreement on every real transition it was built from (empty for a single model), the
    yardstick of what the model has seen."""

    z: Tensor
    state: tuple[Tensor, ...]
    initial: Tensor  # bool [N]
    spread: Tensor = field(default_factory=lambda: torch.zeros(0))  # [T] on real transitions

    def known(self, quantile: float) -> float:
        """The disagreement below which ``quantile`` of the real transitions lie (inf for a
        single model: every state is known)."""
        if not len(self.spread) or not bool(self.spread.gt(0).any()):
            return float("inf")
        return float(torch.quantile(self.spread.float(), quantile))

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def sample(
        self, n: int, generator: torch.Generator, initial_only: bool = False
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        pool = torch.nonzero(self.initial).squeeze(1) if initial_only else None
        size = len(pool) if pool is not None else len(self)
        pick = torch.randint(size, (n,), generator=generator)
        if pool is not None:
            pick = pool[pick]
        pick = pick.to(self.z.device)
        return self.z[pick], tuple(s[pick] for s in self.state)


@torch.no_grad()
def start_states(
    world: WorldModel,
    cache: LatentCache,
    indices: list[int],
    max_states: int = 20_000,
    seed: int = 0,
    chunk: int = 256,
) -> StartStates:
    """Every episode's first state plus up to ``max_states`` states drawn uniformly from
    the episodes' time steps, each with the memory state M reaches there."""
    if not indices:
        raise ValueError("no episodes to draw dream start states from")
    rng = np.random.default_rng(seed)
    zs: list[Tensor] = []
    states: list[list[Tensor]] = []
    initial: list[Tensor] = []
    spread: list[Tensor] = []
    lengths = {i: len(cache.read(i)["rewards"]) for i in indices}
    total = sum(lengths.values())
    keep_p = min(1.0, max_states / max(total, 1))
    for c in range(0, len(indices), chunk):
        eps = [cache.read(i) for i in indices[c : c + chunk]]
        t_max = max(len(e["rewards"]) for e in eps)
        b = len(eps)
        z = torch.zeros(b, t_max, world.vision.latent_dim)
        a = (
            torch.zeros(b, t_max, dtype=torch.long)
            if world.spec.action_kind == "discrete"
            else (torch.zeros(b, t_max, world.spec.action_dim))
        )
        valid = torch.zeros(b, t_max, dtype=torch.bool)
        for k, e in enumerate(eps):
            t = len(e["rewards"])
            z[k, :t] = torch.as_tensor(e["mu"][:t])
            a[k, :t] = torch.as_tensor(e["actions"][:t])
            valid[k, :t] = True
        keep = valid & torch.as_tensor(rng.random((b, t_max)) < keep_p)
        keep[:, 0] = True
        z, a = z.to(world.device), a.to(world.device)
        state = world.initial(b)
        for t in range(t_max):
            rows = torch.nonzero(keep[:, t]).squeeze(1).to(world.device)
            if len(rows):
                zs.append(z[rows, t])
                states.append([s[rows] for s in state])
                initial.append(torch.full((len(rows),), t == 0, dtype=torch.bool))
            out, state = world.memory.step(z[:, t], world.action_features(a[:, t]), state)
            u = world.memory.uncertainty(out)
            if u is not None and t + 1 < t_max:
                spread.append(u[valid[:, t + 1].to(u.device)].cpu())
    return StartStates(
        torch.cat(zs),
        tuple(torch.cat([s[j] for s in states]) for j in range(len(states[0]))),
        torch.cat(initial),
        torch.cat(spread) if spread else torch.zeros(0),
    )


FEATURE_BOUND = 1e4  # finite bounds (check_env warns on infinite ones); latents are O(1)


def feature_space(world: WorldModel) -> gym.spaces.Box:
    return gym.spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (world.feature_dim,), np.float32)


def observation_space(world: WorldModel, observation: str = "features") -> gym.spaces.Box:
    """The space of ``observation`` (one of ``OBSERVATIONS``)."""
    if observation not in OBSERVATIONS:
        raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
    if observation == "features":
        return feature_space(world)
    shape = world.spec.obs_shape
    if world.spec.obs_kind == "pixels":
        return gym.spaces.Box(0, 255, shape, np.uint8)
    return gym.spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, shape, np.float32)


@torch.no_grad()
def observation_of(world: WorldModel, z: Tensor, state: Any, observation: str) -> np.ndarray:
    """What a policy sees of the model state (z, state): see ``OBSERVATIONS``."""
    if observation == "decoded":
        decoded = world.decoded(z)
        if world.spec.obs_kind == "pixels":
            return decoded.cpu().numpy()
        return decoded.float().clamp(-FEATURE_BOUND, FEATURE_BOUND).cpu().numpy()
    feats = world.features(z, state).float()
    return feats.clamp(-FEATURE_BOUND, FEATURE_BOUND).cpu().numpy()


def action_space(spec: EnvSpec) -> gym.spaces.Space:
    if spec.action_kind == "discrete":
        return gym.spaces.Discrete(spec.action_dim)
    return gym.spaces.Box(
        np.asarray(spec.action_low, np.float32), np.asarray(spec.action_high, np.float32)
    )


Scale = tuple[np.ndarray, np.ndarray] | None
"""The env's action bounds (low, high) when actions are taken in [-1, 1]; None otherwise."""


def agent_action_space(spec: EnvSpec, normalized: bool = True) -> tuple[gym.spaces.Space, Scale]:
    """The action space a single-env wrapper offers: continuous actions in [-1, 1] (the
    convention ``check_env`` asks for; ``normalized``) with the bounds to scale them back."""
    if not (normalized and spec.action_kind == "continuous"):
        return action_space(spec), None
    low = np.asarray(spec.action_low, np.float32)
    high = np.asarray(spec.action_high, np.float32)
    return gym.spaces.Box(-1.0, 1.0, low.shape, np.float32), (low, high)


def unnormalize(action: np.ndarray, scale: Scale) -> np.ndarray:
    """An action in [-1, 1] mapped onto the env's bounds (unchanged when ``scale`` is None)."""
    if scale is None:
        return action
    low, high = scale
    return low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (high - low)


@dataclass(frozen=True)
class Dreaming:
    """How dream episodes run."""

    horizon: int = 1000
    """Steps before an episode is truncated."""
    temperature: float = 1.0
    """M's sampling temperature tau (0: its mean, a deterministic dream)."""
    initial_only: bool = True
    """Start from real first steps only (else from any stored real step)."""
    done_mode: str = "threshold"
    """How the done head ends an episode: one of ``DONE_MODES``."""
    observation: str = "features"
    """What the policy sees: one of ``OBSERVATIONS``."""
    unknown: float | None = None
    """End an episode (terminated, MOReL's HALT) at a step where M's ensemble disagrees more
    than on this quantile of the real transitions (None: never; a single M: never)."""
    done_tau: float = 1.0
    """With ``done_mode="sample"``, the temperature of the done head's Bernoulli: the end is
    drawn with probability sigmoid(logit / done_tau). 1 is the head's own probability; below
    1 sharpens it (0 is the threshold p > 0.5), so the small probabilities a head gives every
    state stop adding up to ends where the real env has none."""
    filtered: bool = False
    """Each step's predicted state seen as a real step sees it: M's sample is decoded into an
    observation, and V's posterior of that observation is the state the episode goes on from
    (``WorldModel.refilter``). A policy then sees in the dream the kind of features
    ``Real-v0`` shows it (for the RSSM, the posterior's mode), not the prior's samples."""

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"dream horizon must be >= 1, got {self.horizon}")
        if self.done_mode not in DONE_MODES:
            raise ValueError(f"done_mode must be one of {DONE_MODES}, got {self.done_mode!r}")
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {self.observation!r}")
        if self.done_tau < 0:
            raise ValueError(f"done_tau must be >= 0, got {self.done_tau}")


def dream_actions(spec: EnvSpec, actions: Any, n: int) -> Tensor:
    """``n`` actions as M steps on them: class indices, or vectors clipped to the env's box."""
    if spec.action_kind == "discrete":
        return torch.as_tensor(np.asarray(actions, dtype=np.int64).reshape(n))
    return torch.as_tensor(
        np.clip(
            np.asarray(actions, np.float32).reshape(n, spec.action_dim),
            spec.action_low,
            spec.action_high,
        )
    )


class _DreamCore:
    """Batched dream state and one step of it; resets only when told to."""

    def __init__(self, world: WorldModel, starts: StartStates, num_envs: int, how: Dreaming):
        self.world, self.starts, self.n = world, starts, num_envs
        self.horizon, self.temperature = how.horizon, how.temperature
        self.initial_only, self.done_mode = how.initial_only, how.done_mode
        self.observation, self.done_tau = how.observation, how.done_tau
        self.filtered = how.filtered
        self.known = float("inf") if how.unknown is None else starts.known(how.unknown)
        self.generator = torch.Generator().manual_seed(0)
        self.z, self.state = starts.sample(num_envs, self.generator, self.initial_only)
        self.t = np.zeros(num_envs, dtype=np.int64)

    def seed(self, seed: int | None) -> None:
        if seed is not None:
            self.generator.manual_seed(int(seed))

    def reset(self, mask: np.ndarray) -> None:
        rows = np.flatnonzero(mask)
        if not len(rows):
            return
        z, state = self.starts.sample(len(rows), self.generator, self.initial_only)
        idx = torch.as_tensor(rows, device=self.z.device)
        self.z = self.z.index_copy(0, idx, z)
        self.state = tuple(
            s.index_copy(0, idx, new) for s, new in zip(self.state, state, strict=True)
        )
        self.t[rows] = 0

    def observe(self) -> np.ndarray:
        return observation_of(self.world, self.z, self.state, self.observation)

    @torch.no_grad()
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        act = dream_actions(self.world.spec, actions, self.n).to(self.world.device)
        out = self.world.dream_step(self.z, act, self.state, self.temperature, self.generator)
        self.z, self.state = out.z, out.state
        if self.filtered:
            self.z = self.world.refilter(out.z, out.state)
        self.t += 1
        p = out.done_prob.float().cpu()
        if self.done_mode == "sample" and self.done_tau > 0:
            if self.done_tau != 1.0:
                p = torch.sigmoid(torch.logit(p, eps=1e-6) / self.done_tau)
            terminated = (torch.rand(p.shape, generator=self.generator) < p).numpy()
        else:
            terminated = (p > 0.5).numpy()
        terminated |= (out.uncertainty.float().cpu() > self.known).numpy()
        truncated = (self.t >= self.horizon) & ~terminated
        return out.reward.double().cpu().numpy(), terminated, truncated


class DreamEnv(VectorEnv):
    """``num_envs`` dream episodes stepped together (one forward pass of M per step)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(
        self, world: WorldModel, starts: StartStates, num_envs: int, how: Dreaming = Dreaming()
    ):
        self.core = _DreamCore(world, starts, num_envs, how)
        self.num_envs = num_envs
        self.single_observation_space = observation_space(world, how.observation)
        self.single_action_space = action_space(world.spec)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self.core.seed(seed[0] if isinstance(seed, list) else seed)
        self.core.reset(np.ones(self.num_envs, dtype=bool))
        return self.core.observe(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        rewards, terminated, truncated = self.core.step(actions)
        obs = self.core.observe()
        done = terminated | truncated
        info: dict[str, Any] = {}
        if done.any():
            rows = done.reshape(-1, *[1] * (obs.ndim - 1))
            # the ended envs' last observations (NaN elsewhere; frames: the frame itself)
            frames = obs.dtype == np.uint8
            info["final_obs"] = obs.copy() if frames else np.where(rows, obs, np.nan)
            info["final_obs"] = info["final_obs"].astype(obs.dtype)
            info["_final_obs"] = done
            self.core.reset(done)
            obs = np.where(rows, self.core.observe(), obs)
        return obs, rewards, terminated, truncated, info


class DreamSingleEnv(gym.Env):
    """One dream episode at a time, as a plain ``gymnasium.Env``. Continuous actions are taken
    in [-1, 1] and scaled to the real env's bounds (``normalized_actions``; the convention
    ``check_env`` asks for); discrete actions are the real env's."""

    metadata = {"render_modes": []}  # noqa: RUF012  (gymnasium's convention)

    def __init__(
        self,
        world: WorldModel,
        starts: StartStates,
        how: Dreaming = Dreaming(),
        normalized_actions: bool = True,
    ):
        self.core = _DreamCore(world, starts, 1, how)
        self.observation_space = observation_space(world, how.observation)
        self.action_space, self._scale = agent_action_space(world.spec, normalized_actions)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.core.seed(seed)
        self.core.reset(np.ones(1, dtype=bool))
        return self.core.observe()[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = unnormalize(np.asarray(action), self._scale)
        rewards, terminated, truncated = self.core.step(action[None])
        return (
            self.core.observe()[0],
            float(rewards[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            {},
        )


def dream_horizon(cfg: Config, spec: EnvSpec, length: int | None = None) -> int:
    """The dream's episode cap: ``length`` (a method's own) or ``dream.horizon``, never longer
    than the real env's limit (in agent steps)."""
    limits = [length or cfg.dream.horizon, cfg.env.max_episode_steps, spec.max_episode_steps]
    return min(x for x in limits if x)
