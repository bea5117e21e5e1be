"""``--method ppo``: the model-free baseline, Stable-Baselines3's PPO on the real env.

The env is the one every other method sees (``envs.make_env``: frame skip, 64x64 frames, step
limit), in SB3's DummyVecEnv with a Monitor per env, optional frame stacking and one
VecNormalize for the optional observation and reward normalisation (rl-zoo's ``normalize``).
Hyperparameters come from the ``ppo`` section (``PpoConfig``, below; per-env presets: rl-zoo's
tuned ones).

The score a rollout is judged by is the deterministic policy's mean return on
``eval_episodes`` real episodes when it was evaluated (every ``eval_every`` rollouts; those steps
are counted), else the mean of the last ``stop_window`` training episodes, as for the
actor-critic methods. Checkpoints are the toolkit's (``agent/last`` every rollout,
``agent/best`` when the score improves): the policy's state dict, the observation
normaliser's statistics (both checkpoints: the policy acts on observations normalised with
them), Adam's state and the reward normaliser's statistics (``last``), loaded with
``weights_only=True`` -- never SB3's zip, whose pickled parts would execute code. A killed run
loses at most the rollout in progress; ``--resume`` rebuilds the model, loads the states and
continues the step count, schedules and statistics with freshly reset envs. Wherever the
trained policy acts outside training it sees observations normalised with statistics frozen
(``ObsNormaliser``): the periodic evaluation those of its moment (which the checkpoint saved
next keeps), ``worldmodels evaluate`` and ``--video`` those of ``agent/best``.
The learning curve (real env steps, score) goes to curve.jsonl after every rollout; training
stops at ``total_steps`` real env steps of training or when the score reaches the target (the
env's reward threshold by default). An evaluation runs at a rollout's last step, before the
update, so a run that stops there keeps the policy it evaluated.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecFrameStack, VecNormalize
from torch import nn

from worldmodels.config import Config, to_dict
from worldmodels.config.fields import knob
from worldmodels.data.rollout import EnvPool, run_batch
from worldmodels.envs import EnvSpec, env_steps_per_action, make_env
from worldmodels.errors import UserError
from worldmodels.runs import Context, RunDir
from worldmodels.seeding import Stream, reset_seed
from worldmodels.training.scoring import curve_point, judged_score, reached

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}
OBS_CLIP = 10.0
"""VecNormalize's ``clip_obs`` (its default): normalised observations lie in [-10, 10]."""
OBS_EPSILON = 1e-8
"""VecNormalize's ``epsilon`` (its default): obs / sqrt(var + epsilon)."""


@dataclass
class PpoConfig:
    """``--method ppo``: the model-free baseline, Stable-Baselines3's PPO on the real env (the
    env as the toolkit builds it). Defaults are SB3's; per-env presets are rl-zoo's tuned
    hyperparameters (hyperparams/ppo.yml) where they exist."""

    total_steps: int = knob(100_000, mutable=True)
    """Real env steps of training (rl-zoo's n_timesteps)."""
    n_envs: int = 8
    """Envs stepped together (SB3 DummyVecEnv)."""
    policy: str = "auto"
    """``MlpPolicy``, ``CnnPolicy`` or ``auto`` (Cnn for pixels)."""
    n_steps: int = 2048
    """Steps per env per rollout."""
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = knob(0.99, unit=True)
    gae_lambda: float = knob(0.95, unit=True)
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = knob(0.5, positive=True)
    learning_rate: float = knob(3e-4, rate=True)
    lr_schedule: str = "constant"
    """``constant`` or ``linear`` (rl-zoo's lin_X: decays to 0 over total_steps)."""
    clip_range: float = knob(0.2, unit=True)
    clip_schedule: str = "constant"
    """``constant`` or ``linear``."""
    use_sde: bool = False
    sde_sample_freq: int = knob(-1, signed=True)
    log_std_init: float = knob(0.0, signed=True)
    ortho_init: bool = True
    net_arch: list[int] = field(default_factory=list)
    """Hidden sizes of the policy and value networks (empty = SB3's default)."""
    activation: str = "tanh"
    """``tanh`` (SB3's default), ``relu`` or ``gelu``."""
    frame_stack: int = 1
    """Observations stacked along the last axis (VecFrameStack)."""
    normalize_obs: bool = False
    """Normalise vector observations by their running mean and std, clipped to [-10, 10]
    (VecNormalize's ``norm_obs``); the statistics are kept in the checkpoints and applied,
    frozen, wherever the trained policy acts. rl-zoo's ``normalize: true`` is this and
    ``normalize_reward``."""
    normalize_reward: bool = False
    """Scale rewards by a running estimate of the return's std (VecNormalize's
    ``norm_reward``)."""
    target_return: float | None = knob(None, signed=True, mutable=True)
    """Stop when the score (below) reaches this (None = the env's reward_threshold)."""
    stop_window: int = knob(20, mutable=True)
    """Finished training episodes averaged for the stop test, the best checkpoint and the
    learning curve when there was no evaluation."""
    eval_every: int = knob(0, zero_ok=True, mutable=True)
    """Every this many rollouts, evaluate the deterministic policy on ``eval_episodes`` real
    episodes (their steps are counted) and use that score for the stop test, the best
    checkpoint and the learning curve instead of the training episodes (0 = off). PPO's
    training episodes sample actions, so they understate the deterministic policy."""
    eval_episodes: int = knob(10, mutable=True)
    """Episodes of that evaluation."""

    def check(self) -> None:
        if self.batch_size < 2:
            raise UserError("ppo.batch_size must be >= 2")
        if not {self.lr_schedule, self.clip_schedule} <= {"constant", "linear"}:
            raise UserError("ppo.lr_schedule and ppo.clip_schedule must be constant or linear")
        if self.policy not in ("auto", "MlpPolicy", "CnnPolicy") or self.activation not in (
            "tanh",
            "relu",
            "gelu",
        ):
            raise UserError(
                "ppo.policy must be auto, MlpPolicy or CnnPolicy; ppo.activation tanh, relu or gelu"
            )


def make_vec_env(cfg: Config, n: int, seed: int) -> VecEnv:
    venv: VecEnv = DummyVecEnv([lambda: Monitor(make_env(cfg.env)) for _ in range(n)])
    venv.seed(seed)
    pc = cfg.section(PpoConfig)
    if pc.frame_stack > 1:
        venv = VecFrameStack(venv, pc.frame_stack, channels_order="last")
    if pc.normalize_obs or pc.normalize_reward:  # one wrapper, as rl-zoo's ``normalize``
        venv = VecNormalize(
            venv,
            norm_obs=pc.normalize_obs,
            norm_reward=pc.normalize_reward,
            clip_obs=OBS_CLIP,
            gamma=pc.gamma,
            epsilon=OBS_EPSILON,
        )
    return venv


def _obs_rms(model: BaseAlgorithm) -> RunningMeanStd | None:
    """The training envs' running observation statistics (None: observations are not
    normalised)."""
    env = model.get_vec_normalize_env()  # under SB3's own wrappers (image transpose)
    if env is None or not env.norm_obs:
        return None
    assert isinstance(env.obs_rms, RunningMeanStd)  # a Box observation space
    return env.obs_rms


def _rms_state(rms: RunningMeanStd) -> dict[str, Any]:
    """Running statistics as a weights-only checkpoint stores them (tensors, a float)."""
    return {
        "mean": torch.as_tensor(rms.mean),
        "var": torch.as_tensor(rms.var),
        "count": float(rms.count),
    }


def _load_rms(rms: RunningMeanStd, state: dict[str, Any]) -> None:
    rms.mean = state["mean"].numpy()
    rms.var = state["var"].numpy()
    rms.count = state["count"]


@dataclass(frozen=True, eq=False)
class ObsNormaliser:
    """Observation statistics, frozen: ``clip((obs - mean) / sqrt(var + OBS_EPSILON),
    -OBS_CLIP, OBS_CLIP)`` as float32, VecNormalize's normalisation without its updates."""

    mean: np.ndarray
    var: np.ndarray

    @classmethod
    def of(cls, state: dict[str, Any]) -> ObsNormaliser:
        """From a checkpoint's ``obs_rms``."""
        return cls(state["mean"].numpy().copy(), state["var"].numpy().copy())

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        scaled = (obs - self.mean) / np.sqrt(self.var + OBS_EPSILON)
        return np.clip(scaled, -OBS_CLIP, OBS_CLIP).astype(np.float32)


def _schedule(value: float, kind: str) -> Any:
    if kind == "linear":  # SB3 passes the fraction of training left, 1 -> 0
        return lambda remaining: remaining * value
    return value


def build_ppo(cfg: Config, spec: EnvSpec, venv: VecEnv, device: torch.device) -> PPO:
    p = cfg.section(PpoConfig)
    policy = p.policy
    if policy == "auto":
        policy = "CnnPolicy" if spec.obs_kind == "pixels" else "MlpPolicy"
    kwargs: dict[str, Any] = {
        "activation_fn": ACTIVATIONS[p.activation],
        "ortho_init": p.ortho_init,
    }
    if spec.action_kind == "continuous":
        kwargs["log_std_init"] = p.log_std_init
    if p.net_arch:
        kwargs["net_arch"] = {"pi": list(p.net_arch), "vf": list(p.net_arch)}
    return PPO(
        policy,
        venv,
        learning_rate=_schedule(p.learning_rate, p.lr_schedule),
        n_steps=p.n_steps,
        batch_size=p.batch_size,
        n_epochs=p.n_epochs,
        gamma=p.gamma,
        gae_lambda=p.gae_lambda,
        clip_range=_schedule(p.clip_range, p.clip_schedule),
        ent_coef=p.ent_coef,
        vf_coef=p.vf_coef,
        max_grad_norm=p.max_grad_norm,
        use_sde=p.use_sde and spec.action_kind == "continuous",
        sde_sample_freq=p.sde_sample_freq,
        policy_kwargs=kwargs,
        seed=cfg.seed,
        device=device,
        verbose=0,
    )


def _target(cfg: Config, spec: EnvSpec) -> float | None:
    target = cfg.section(PpoConfig).target_return
    return target if target is not None else spec.reward_threshold


class _Checkpoints(BaseCallback):
    """Counts real env steps and episodes, logs the curve, saves, and stops at the budget or
    the target."""

    def __init__(self, run: RunDir, cfg: Config, spec: EnvSpec, prog: dict[str, Any]):
        super().__init__()
        self.run, self.cfg, self.spec, self.prog = run, cfg, spec, prog
        self.pc = cfg.section(PpoConfig)
        self.recent: deque[float] = deque(prog["recent"], maxlen=self.pc.stop_window)
        self.target = _target(cfg, spec)
        self.eval_score: float | None = None  # this rollout's evaluation, if any

    def _score(self) -> float:
        return judged_score(self.eval_score, self.recent, self.pc.stop_window)

    def _evaluate(self) -> None:
        """The deterministic policy on ``eval_episodes`` real episodes (seeds apart from
        training and the final evaluation); their steps are counted."""
        p, n = self.prog, self.pc.eval_episodes
        seed = reset_seed(self.cfg.seed, Stream.SELECT, p["rollouts"] * 1000)
        pool = EnvPool(self.cfg.env)
        rms = _obs_rms(self.model)  # the statistics as they are now, frozen
        norm = None if rms is None else ObsNormaliser(rms.mean.copy(), rms.var.copy())
        try:
            policy = Sb3Policy(self.model, self.pc.frame_stack, norm)  # type: ignore[arg-type]
            result = run_batch(pool, self.spec, policy, [seed + k for k in range(n)])
        finally:
            pool.close()
        self.eval_score = float(result.returns.mean())
        p["eval_steps"] += result.env_steps
        p["real_env_steps"] += result.env_steps
        self.logger.record("eval/mean_reward", self.eval_score)

    def _on_step(self) -> bool:
        p = self.prog
        for info in self.locals["infos"]:
            p["real_env_steps"] += int(info.get("env_steps", 1))
            if "episode" in info:
                self.recent.append(float(info["episode"]["r"]))
                p["episodes"] += 1
        if self.locals["n_steps"] == self.locals["n_rollout_steps"] - 1:  # a rollout's last
            p["rollouts"] += 1
            every = self.pc.eval_every
            if every and p["rollouts"] % every == 0:
                self._evaluate()
        done = p["real_env_steps"] - p["eval_steps"] >= self.pc.total_steps
        if reached(self._score(), self.target):
            done = True
        if done:
            self.prog["complete"] = True
            self.save()
        return not done

    def _on_rollout_end(self) -> None:
        self.save()

    def save(self) -> None:
        p = self.prog
        p["num_timesteps"] = int(self.model.num_timesteps)
        p["recent"] = list(self.recent)
        score = p["score"] = self._score()
        point = curve_point(self.eval_score, self.recent)
        if point is not None:
            self.run.log_curve(p["real_env_steps"], point)
        self.eval_score = None
        # until a score is measured (``stop_window`` finished episodes, or an evaluation) the
        # best agent is the latest: never an untrained one kept for want of a score
        improved = score > p["best_score"] or p["best_score"] == -math.inf
        p["best_score"] = max(score, p["best_score"])
        payload = _payload(self.cfg, self.spec, self.model, dict(p))
        if improved or not self.run.has("ppo/best"):
            self.run.save("ppo/best", payload)
        self.run.save("ppo/last", {**payload, **_training_state(self.model)})


def _payload(
    cfg: Config, spec: EnvSpec, model: BaseAlgorithm, prog: dict[str, Any]
) -> dict[str, Any]:
    payload = {
        "model": {"name": "sb3_ppo", "kwargs": {}, "state_dict": model.policy.state_dict()},
        "spec": spec.shape_signature(),
        "config": to_dict(cfg),
        "progress": prog,
    }
    rms = _obs_rms(model)
    if rms is not None:  # the policy acts on observations normalised with these
        payload["obs_rms"] = _rms_state(rms)
    return payload


def _training_state(model: BaseAlgorithm) -> dict[str, Any]:
    state: dict[str, Any] = {"optimizer": model.policy.optimizer.state_dict()}
    env = model.get_vec_normalize_env()  # under SB3's own wrappers (image transpose)
    if env is not None:
        state["ret_rms"] = _rms_state(env.ret_rms)
    return state


def train_ppo_baseline(ctx: Context) -> dict[str, Any]:
    run, cfg, spec, device = ctx.run, ctx.cfg, ctx.spec, ctx.device
    pc = cfg.section(PpoConfig)
    prog: dict[str, Any] = {
        "real_env_steps": 0,
        "eval_steps": 0,
        "num_timesteps": 0,
        "rollouts": 0,
        "episodes": 0,
        "recent": [],
        "score": -math.inf,
        "best_score": -math.inf,
        "complete": False,
    }
    last = run.load("ppo/last") if run.has("ppo/last") else None
    if last is not None:
        if last["model"]["name"] != "sb3_ppo":
            raise UserError(
                f"{run.root} holds another method's agent; use a new --run-dir for --method ppo"
            )
        prog = {**last["progress"]}
        recent = prog["recent"][-pc.stop_window :]
        score = float(np.mean(recent)) if len(recent) >= pc.stop_window else -math.inf
        score = prog.setdefault("score", score)  # the last rollout's
        prog.setdefault("eval_steps", 0)
        prog.setdefault("rollouts", prog["num_timesteps"] // (pc.n_steps * pc.n_envs))
        target = _target(cfg, spec)
        reached = target is not None and score >= target
        if reached or prog["real_env_steps"] - prog["eval_steps"] >= pc.total_steps:
            return prog  # a larger budget or target (resume-mutable) reopens a finished run
        prog["complete"] = False
    venv = make_vec_env(cfg, pc.n_envs, reset_seed(cfg.seed, Stream.TRAIN, prog["num_timesteps"]))
    model = build_ppo(cfg, spec, venv, device)
    model.set_logger(configure(str(run.tb), ["tensorboard"]))
    if last is not None:
        model.policy.load_state_dict(last["model"]["state_dict"])
        model.policy.optimizer.load_state_dict(last["optimizer"])
        model.num_timesteps = int(prog["num_timesteps"])
        if isinstance(venv, VecNormalize):  # the statistics go on from the checkpoint's
            if "ret_rms" in last:
                _load_rms(venv.ret_rms, last["ret_rms"])
            if venv.norm_obs and "obs_rms" in last:
                assert isinstance(venv.obs_rms, RunningMeanStd)
                _load_rms(venv.obs_rms, last["obs_rms"])
    per_action = env_steps_per_action(cfg.env)
    budget = math.ceil(pc.total_steps / per_action)  # agent steps; the callback stops
    callback = _Checkpoints(run, cfg, spec, prog)
    try:
        model.learn(
            total_timesteps=max(1, budget - prog["num_timesteps"]),
            callback=callback,
            reset_num_timesteps=False,
            progress_bar=False,
        )
        if not prog["complete"]:  # SB3 ran out of agent steps first
            prog["complete"] = True
            callback.save()
    finally:
        venv.close()
    return prog


class Sb3Policy:
    """The trained PPO acting deterministically in n real envs (frames stacked, then
    observations normalised by ``norm``, as in training)."""

    def __init__(self, model: PPO, frame_stack: int, norm: ObsNormaliser | None = None):
        self.model, self.frame_stack, self.norm = model, frame_stack, norm

    def reset(self, n: int) -> np.ndarray | None:
        return None

    def act(self, obs: np.ndarray, state: np.ndarray | None) -> tuple[np.ndarray, Any]:
        if self.frame_stack > 1:
            if state is None:  # VecFrameStack starts from zeros
                state = np.zeros((*obs.shape[:-1], obs.shape[-1] * self.frame_stack), obs.dtype)
            c = obs.shape[-1]
            state = np.concatenate([state[..., c:], obs], axis=-1)
            inp = state
        else:
            inp = obs
        if self.norm is not None:
            inp = self.norm(inp)
        action, _ = self.model.predict(inp, deterministic=True)
        return np.asarray(action), state


def load_ppo_policy(run: RunDir, cfg: Config, spec: EnvSpec, device: torch.device) -> Sb3Policy:
    if not run.has("ppo/best"):
        raise UserError(
            f"{run.root} has no trained PPO agent (checkpoints/ppo/best.pt); run "
            f"`worldmodels train --method ppo --run-dir {run.root}` first"
        )
    payload = run.load("ppo/best")
    if cfg.section(PpoConfig).normalize_obs and "obs_rms" not in payload:
        raise UserError(
            f"{run.root}'s checkpoints/ppo/best.pt has no observation statistics although "
            f"ppo.normalize_obs is on: it is damaged; retrain in a new --run-dir"
        )
    venv = make_vec_env(cfg, 1, cfg.seed)
    try:
        with warnings.catch_warnings():  # one env: SB3 warns that batch_size > rollout size
            warnings.simplefilter("ignore", UserWarning)
            model = build_ppo(cfg, spec, venv, device)
    finally:
        venv.close()
    model.policy.load_state_dict(payload["model"]["state_dict"])
    model.policy.set_training_mode(False)
    norm = ObsNormaliser.of(payload["obs_rms"]) if "obs_rms" in payload else None
    return Sb3Policy(model, cfg.section(PpoConfig).frame_stack, norm)
