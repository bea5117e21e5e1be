"""The config sections of the actor-critic methods (``--method a2c`` and ``--method wm-ppo``,
which declare them): the actor-critic (``ac``) and the imagined experience in its updates
(``imagination``). Here, below the methods, so that the training code reads them typed
(``cfg.section(ActorCriticConfig)``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from worldmodels.config.fields import knob
from worldmodels.errors import UserError


@dataclass
class ActorCriticConfig:
    """The actor-critic of ``--method a2c`` and ``--method wm-ppo``: a policy and a separate
    value MLP on [z, h], LayerNorm + ReLU."""

    hidden_dims: list[int] = field(default_factory=lambda: [128, 64])
    """Hidden sizes of the policy MLP and of the value MLP."""
    layer_norm: bool = True
    """LayerNorm after each hidden layer."""
    lr: float = knob(3e-4, rate=True)
    """Adam learning rate (also for V and M when trained end to end by A2C)."""
    gamma: float = knob(0.99, unit=True)
    """Discount."""
    gae_lambda: float = knob(0.95, unit=True)
    """GAE lambda."""
    num_envs: int = 4
    """Real envs stepped together."""
    n_steps: int = 128
    """Steps per env per update (the n-step trajectory length)."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus."""
    max_grad_norm: float = knob(0.5, positive=True)
    """Gradient-norm clip."""
    total_steps: int = knob(100_000, mutable=True)
    """Real env steps of actor-critic training (collection before it is counted apart)."""
    updates: int = knob(0, zero_ok=True, mutable=True)
    """> 0: also stop after this many updates (``--max-epoch`` with a2c)."""
    target_return: float | None = knob(None, signed=True, mutable=True)
    """Stop when the mean return of the last ``stop_window`` finished training episodes
    reaches this (None = the env's reward_threshold; no extra real steps are spent)."""
    stop_window: int = knob(20, mutable=True)
    """Finished real episodes averaged for the stop test and the best checkpoint."""
    eval_every: int = knob(0, zero_ok=True, mutable=True)
    """Every this many updates, evaluate the deterministic policy on ``eval_episodes`` real
    episodes (their steps are counted) and use that score for the stop test and the best
    checkpoint instead of the training episodes (0 = off)."""
    eval_episodes: int = knob(10, mutable=True)
    """Episodes of that evaluation."""
    dream_gate: bool = knob(True, mutable=True)
    """Run that real evaluation only when the deterministic policy's score in the dream
    (``dream_gate_episodes`` dreams from real reset states; no real step) reaches the target."""
    dream_gate_episodes: int = knob(64, mutable=True)
    """Dream episodes of the gate."""
    dream_gate_fraction: float = knob(0.8, unit=True, mutable=True)
    """The gate opens at this fraction of the target: the sampled done head makes the dream
    pessimistic (a CartPole policy scoring 500 in reality scored 420-460 in the dream)."""
    clip_range: float = knob(0.2, unit=True)
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
    (``--method wm-ppo``), and A2C's imagined rollouts (``--method a2c``; set
    ``imagination.ratio=0`` for real-only A2C)."""

    ratio: float = 0.5
    """Fraction of each PPO batch that is imagined (``imagination_ratio`` in a
    ``world_model:`` config file)."""
    horizon: int = 15
    """Steps of each imagined rollout (imagination_horizon), started from real states."""
    random_steps: int = 10_000
    """Random-policy env steps collected before world-model pre-training."""
    retrain_every: int = knob(10, zero_ok=True)
    """Retrain M on all real data gathered so far every this many PPO iterations (0 = never)."""
    retrain_epochs: int = knob(2, zero_ok=True)
    """Epochs of each retraining."""

    def check(self) -> None:
        if not self.ratio < 1:
            raise UserError("imagination.ratio must be in [0, 1)")
