"""Real envs seen through the world model: a ``VectorEnv`` whose observations are the
controller features [z, h], exactly like the dream's, so one actor-critic and one rollout
collector work on real and imagined experience alike.

Per step: the envs step, V encodes the new observations (one batched forward), M advances
its state on (z_t, a_t) and the features [z_{t+1}, h_{t+1}] come back. Same-step autoreset:
an ended env's final features are in ``info["final_obs"]``, its memory state restarts. Every
finished episode is written to the episode store (if given), so the world model can be
retrained on all real data and nothing but the episode in progress is lost on a crash.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from worldmodels.config import EnvConfig
from worldmodels.data.store import Episode, EpisodeStore
from worldmodels.dream import (
    action_space,
    agent_action_space,
    feature_space,
    observation_of,
    observation_space,
    unnormalize,
)
from worldmodels.envs import action_to_env, make_env
from worldmodels.seeding import Stream, reset_seed
from worldmodels.world_model import WorldModel


class LatentVecEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        env_cfg: EnvConfig,
        world: WorldModel,
        num_envs: int,
        seed: int,
        store: EpisodeStore | None = None,
    ):
        self.world, self.env_spec, self.num_envs = world, world.spec, num_envs
        self.envs: list[gym.Env] = [make_env(env_cfg) for _ in range(num_envs)]
        self.store = store
        self.run_seed, self.episodes_started = seed, 0
        self.single_observation_space = feature_space(world)
        self.single_action_space = action_space(world.spec)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.env_steps = 0
        self.finished: list[tuple[float, int]] = []  # (return, length) of finished episodes
        self._records: list[dict[str, list[Any]]] = [{} for _ in range(num_envs)]
        existing = store.indices() if store is not None else []
        self._next_index = existing[-1] + 1 if existing else 0

    # the state the features were computed from (dream start states, end-to-end updates)
    raw_obs: np.ndarray
    z: torch.Tensor
    state: Any

    def _start(self, i: int) -> np.ndarray:
        seed = reset_seed(self.run_seed, Stream.TRAIN, self.episodes_started)
        self.episodes_started += 1
        obs, _ = self.envs[i].reset(seed=seed)
        self._records[i] = {
            "obs": [obs],
            "act": [],
            "rew": [],
            "term": [],
            "seed": [seed],
            "steps": [0],
        }
        return obs

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:  # the run seed whose training stream the episodes take, anew
            self.run_seed = int(seed[0] if isinstance(seed, list) else seed)
            self.episodes_started = 0
        self.raw_obs = np.stack([self._start(i) for i in range(self.num_envs)])
        self.z = self.world.encode(self.raw_obs)
        self.state = self.world.initial(self.num_envs)
        return self.observe(), {}

    @torch.no_grad()
    def observe(self) -> np.ndarray:
        return self.world.features(self.z, self.state).float().cpu().numpy()

    @torch.no_grad()
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        n = self.num_envs
        rewards = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        obs = self.raw_obs.copy()
        for i, env in enumerate(self.envs):
            o, r, term, trunc, info = env.step(action_to_env(actions[i], self.env_spec))
            steps = int(info.get("env_steps", 1))
            self.env_steps += steps
            rec = self._records[i]
            rec["obs"].append(o)
            rec["act"].append(actions[i])
            rec["rew"].append(float(r))
            rec["term"].append(bool(term))
            rec["steps"][0] += steps
            obs[i], rewards[i], terminated[i], truncated[i] = o, r, term, trunc
        act = torch.as_tensor(np.asarray(actions), device=self.world.device)
        _, self.state = self.world.step(self.z, act, self.state)
        self.z = self.world.observe(obs, self.state)
        self.raw_obs = obs
        features = self.observe()
        done = terminated | truncated
        info_out: dict[str, Any] = {}
        if done.any():
            info_out["final_obs"] = np.where(done[:, None], features, np.nan).astype(np.float32)
            info_out["_final_obs"] = done
            info_out["final_raw_obs"] = obs.copy()  # raw observations before the reset
            rows = np.flatnonzero(done)
            for row in rows.tolist():
                self._finish(row, bool(truncated[row] and not terminated[row]))
                self.raw_obs[row] = self._start(row)
            idx = torch.as_tensor(rows, device=self.world.device)
            self.z = self.z.index_copy(0, idx, self.world.encode(self.raw_obs[rows]))
            fresh = self.world.initial(len(rows))
            self.state = tuple(
                s.index_copy(0, idx, f) for s, f in zip(self.state, fresh, strict=True)
            )
            features = self.observe()
        return features, rewards, terminated, truncated, info_out

    def snapshot(self) -> dict[str, Any]:
        """What a resumed run needs to continue the episodes in progress exactly: each env's
        reset seed and actions so far (replayed by :meth:`restore`), the raw observations to
        check the replay against, and V/M's carried state (computed under the weights of
        the time, so it is saved, not recomputed). Tensors and primitives only."""
        kind = torch.int64 if self.env_spec.action_kind == "discrete" else torch.float32
        shape = self.single_action_space.shape or ()
        return {
            "run_seed": self.run_seed,
            "episodes_started": self.episodes_started,
            "seeds": [int(rec["seed"][0]) for rec in self._records],
            "actions": [
                torch.as_tensor(np.asarray(rec["act"]), dtype=kind).reshape(-1, *shape)
                for rec in self._records
            ],
            "raw_obs": torch.as_tensor(self.raw_obs),
            "z": self.z.cpu(),
            "state": [s.cpu() for s in self.state],
        }

    def restore(self, snap: dict[str, Any]) -> bool:
        """Continue from :meth:`snapshot`: reset each env with its episode's seed and replay
        its actions. False (and fresh episodes, as after ``reset``) when an env does not
        reproduce the saved observation -- it is not deterministic under replay."""
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=int(snap["seeds"][i]))
            rec: dict[str, list[Any]] = {"obs": [obs], "act": [], "rew": [], "term": []}
            rec |= {"seed": [int(snap["seeds"][i])], "steps": [0]}
            for a in snap["actions"][i].numpy():
                o, r, term, _, info = env.step(action_to_env(a, self.env_spec))
                rec["obs"].append(o)
                rec["act"].append(a)
                rec["rew"].append(float(r))
                rec["term"].append(bool(term))
                rec["steps"][0] += int(info.get("env_steps", 1))
            if not np.array_equal(rec["obs"][-1], snap["raw_obs"][i].numpy()):
                self.episodes_started = snap["episodes_started"]  # fresh episodes, new seeds
                self.reset()
                self.env_steps = 0
                return False
            self._records[i] = rec
        self.run_seed = snap.get("run_seed", self.run_seed)
        self.episodes_started = snap["episodes_started"]
        self.raw_obs = snap["raw_obs"].numpy().copy()
        self.z = snap["z"].to(self.world.device)
        self.state = tuple(s.to(self.world.device) for s in snap["state"])
        self.env_steps = 0  # the replayed steps were counted before the kill
        return True

    def _finish(self, i: int, truncated: bool) -> None:
        rec = self._records[i]
        ret = float(np.sum(rec["rew"]))
        self.finished.append((ret, len(rec["rew"])))
        if self.store is None:
            return
        kind = np.int64 if self.env_spec.action_kind == "discrete" else np.float32
        episode = Episode(
            observations=np.stack(rec["obs"]),
            actions=np.asarray(rec["act"], dtype=kind),
            rewards=np.asarray(rec["rew"], dtype=np.float32),
            terminated=np.asarray(rec["term"], dtype=bool),
            meta={
                "env": self.env_spec.env_id,
                "seed": int(rec["seed"][0]),
                "return": ret,
                "truncated": truncated,
                "env_steps": int(rec["steps"][0]),
                "policy": "actor-critic",
            },
        )
        self.store.write(self._next_index, episode)
        self._next_index += 1

    def close(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()


class LatentEnv(gym.Env):
    """One real env seen through V and M as a plain ``gymnasium.Env``: its observations are
    the dream's -- the controller features [z, h], or V's decoding of z (``observation``, one
    of ``dream.OBSERVATIONS``) -- so a policy trained in the dream (``DreamSingleEnv``) acts
    for real unchanged. Continuous actions are taken in [-1, 1] and scaled to the env's
    bounds, as the dream does (``normalized_actions``)."""

    metadata = {"render_modes": []}  # noqa: RUF012  (gymnasium's convention)

    def __init__(
        self,
        env_cfg: EnvConfig,
        world: WorldModel,
        normalized_actions: bool = True,
        observation: str = "features",
    ):
        self.world, self.env, self.observation = world, make_env(env_cfg), observation
        self.observation_space = observation_space(world, observation)
        self.action_space, self._scale = agent_action_space(world.spec, normalized_actions)

    def _features(self) -> np.ndarray:
        return observation_of(self.world, self.z, self.state, self.observation)[0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self.z = self.world.encode(np.asarray(obs)[None])
        self.state = self.world.initial(1)
        return self._features(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = unnormalize(np.asarray(action), self._scale)
        obs, reward, terminated, truncated, info = self.env.step(
            action_to_env(action, self.world.spec)
        )
        act = torch.as_tensor(action[None], device=self.world.device)
        _, self.state = self.world.step(self.z, act, self.state)
        self.z = self.world.observe(np.asarray(obs)[None], self.state)
        return self._features(), float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        self.env.close()
