"""The agents' config sections: the actor-critic of ``a2c``/``wm-ppo``, imagination, the
planners, ``mpc`` and the PPO baseline (the world model's and the controller's sections are in
``schema.py``, which assembles the tree)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ActorCriticConfig:
    """The actor-critic of ``--method a2c`` and ``--method wm-ppo`` (seed 000's improved
    controller: policy and a separate value MLP on [z, h], LayerNorm + ReLU)."""

    hidden_dims: list[int] = field(default_factory=lambda: [128, 64])
    """Hidden sizes of the policy MLP and of the value MLP."""
    layer_norm: bool = True
    """LayerNorm after each hidden layer."""
    lr: float = 3e-4
    """Adam learning rate (also for V and M when trained end to end by A2C)."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    num_envs: int = 4
    """Real envs stepped together."""
    n_steps: int = 128
    """Steps per env per update (the n-step trajectory length)."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip."""
    total_steps: int = 100_000
    """Real env steps of actor-critic training (collection before it is counted apart)."""
    updates: int = 0
    """> 0: also stop after this many updates (seed 000's ``--max-epoch`` with a2c)."""
    target_return: float | None = None
    """Stop when the mean return of the last ``stop_window`` finished training episodes
    reaches this (None = the env's reward_threshold; no extra real steps are spent)."""
    stop_window: int = 20
    """Finished real episodes averaged for the stop test and the best checkpoint."""
    eval_every: int = 0
    """Every this many updates, evaluate the deterministic policy on ``eval_episodes`` real
    episodes (their steps are counted) and use that score for the stop test and the best
    checkpoint instead of the training episodes (0 = off)."""
    eval_episodes: int = 10
    """Episodes of that evaluation."""
    dream_gate: bool = True
    """Run that real evaluation only when the deterministic policy's score in the dream
    (``dream_gate_episodes`` dreams from real reset states; no real step) reaches the target."""
    dream_gate_episodes: int = 64
    """Dream episodes of the gate."""
    dream_gate_fraction: float = 0.8
    """The gate opens at this fraction of the target: the sampled done head makes the dream
    pessimistic (a CartPole policy scoring 500 in reality scored 420-460 in the dream)."""
    clip_range: float = 0.2
    """PPO clip range."""
    ppo_epochs: int = 10
    """PPO passes over each batch."""
    minibatch_size: int = 256
    """PPO minibatch size."""
    memory_coef: float = 0.1
    """A2C: weight of M's prediction loss (next z, reward, done) in the total loss."""
    vision_coef: float = 1.0
    """A2C: weight of V's beta-VAE loss in the total loss (end to end)."""
    end_to_end: bool = True
    """A2C: train V and M with the actor-critic loss flowing through the current step."""
    pretrain_vision: bool = False
    """A2C: collect random episodes and pre-train V before A2C (``--pretrain-vision``)."""
    pretrain_memory: bool = False
    """A2C: also pre-train M on them (``--pretrain-memory``; implies pre-training V)."""


@dataclass
class ImaginationConfig:
    """Imagined experience in the actor-critic updates: PPO on real plus imagined experience
    (``--method wm-ppo``, seed 002), and A2C's imagined rollouts (``--method a2c``; set
    ``imagination.ratio=0`` for seed 000's real-only A2C)."""

    ratio: float = 0.5
    """Fraction of each PPO batch that is imagined (seed 002's imagination_ratio)."""
    horizon: int = 15
    """Steps of each imagined rollout (imagination_horizon), started from real states."""
    random_steps: int = 10_000
    """Random-policy env steps collected before world-model pre-training."""
    retrain_every: int = 10
    """Retrain M on all real data gathered so far every this many PPO iterations (0 = never)."""
    retrain_epochs: int = 2
    """Epochs of each retraining."""


@dataclass
class PlannerConfig:
    """Model-predictive control with M (seed 000's planning controllers; ``--method mpc`` and
    ``evaluate --planner``). Every candidate of one decision is a row of one ``imagine`` batch."""

    kind: str = "auto"
    """``enumerate`` (discrete: every action sequence, or ``max_sequences`` random ones),
    ``cem`` or ``mppi`` (continuous), ``auto`` = enumerate / cem by action space."""
    horizon: int = 8
    """Planning horizon H (seed 000's --planning-horizon)."""
    gamma: float = 0.99
    """Discount of predicted rewards; a critic's value (if the run has one) at step H."""
    aggregate: str = "mean"
    """With an ensemble M: ``mean`` (the members' mean prediction) or ``pessimistic`` (each
    member rolled alone, the worst value kept)."""
    blend: float = 1.0
    """Weight of planning against a base actor-critic policy: p = (1 - w) pi + w onehot(plan);
    1 = planning alone (seed 000: 0.3 with its improved controller)."""
    max_sequences: int = 256
    """Discrete: enumerate all A^H sequences up to this many, else sample this many."""
    population: int = 256
    """CEM / MPPI: action sequences sampled per iteration."""
    elites: int = 32
    """CEM: the best sequences the Gaussian is refit to."""
    iterations: int = 4
    """CEM / MPPI: refinement rounds per decision."""
    init_std: float = 0.5
    """CEM / MPPI: sampling std as a fraction of half the action range."""
    mppi_lambda: float = 1.0
    """MPPI: temperature of the softmax over sequence values."""
    seed: int = 0
    """Seed of the planner's sampling (offset by the run's seed)."""


@dataclass
class MpcConfig:
    """``--method mpc``: random episodes -> V, M -> act with the planner in the real env,
    storing every episode and retraining M on all of them, until ``total_steps``."""

    random_episodes: int = 10
    """Random-policy episodes collected before the first model."""
    total_steps: int = 5_000
    """Real env steps (random + planned) of the whole training."""
    episodes_per_iter: int = 1
    """Planned episodes between two retrainings of M."""
    retrain_epochs: int = 20
    """Epochs of each retraining of M on all data so far."""
    value_epochs: int = 0
    """> 0: after each retraining, fit a critic V([z, h]) to the stored episodes' discounted
    returns-to-go for this many epochs; the planner adds gamma^H V at its horizon (it sees
    past H, e.g. CartPole's cart drifting toward the edge). 0 = rewards within H only."""


@dataclass
class PpoConfig:
    """``--method ppo``: the model-free baseline, Stable-Baselines3's PPO on the real env (the
    env as the toolkit builds it). Defaults are SB3's; per-env presets are rl-zoo's tuned
    hyperparameters (hyperparams/ppo.yml) where they exist."""

    total_steps: int = 100_000
    """Real env steps of training (rl-zoo's n_timesteps)."""
    n_envs: int = 8
    """Envs stepped together (SB3 DummyVecEnv)."""
    policy: str = "auto"
    """``MlpPolicy``, ``CnnPolicy`` or ``auto`` (Cnn for pixels)."""
    n_steps: int = 2048
    """Steps per env per rollout."""
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    learning_rate: float = 3e-4
    lr_schedule: str = "constant"
    """``constant`` or ``linear`` (rl-zoo's lin_X: decays to 0 over total_steps)."""
    clip_range: float = 0.2
    clip_schedule: str = "constant"
    """``constant`` or ``linear``."""
    use_sde: bool = False
    sde_sample_freq: int = -1
    log_std_init: float = 0.0
    ortho_init: bool = True
    net_arch: list[int] = field(default_factory=list)
    """Hidden sizes of the policy and value networks (empty = SB3's default)."""
    activation: str = "tanh"
    """``tanh`` (SB3's default), ``relu`` or ``gelu``."""
    frame_stack: int = 1
    """Observations stacked along the last axis (VecFrameStack)."""
    normalize_reward: bool = False
    """Scale rewards by a running estimate of the return's std (VecNormalize, rewards only)."""
    target_return: float | None = None
    """Stop when the score (below) reaches this (None = the env's reward_threshold)."""
    stop_window: int = 20
    """Finished training episodes averaged for the stop test, the best checkpoint and the
    learning curve when there was no evaluation."""
    eval_every: int = 0
    """Every this many rollouts, evaluate the deterministic policy on ``eval_episodes`` real
    episodes (their steps are counted) and use that score for the stop test, the best
    checkpoint and the learning curve instead of the training episodes (0 = off). PPO's
    training episodes sample actions, so they understate the deterministic policy."""
    eval_episodes: int = 10
    """Episodes of that evaluation."""
