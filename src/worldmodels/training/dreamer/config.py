"""The ``dreamer:`` config section: the DreamerV3-class agent's world model, actor-critic,
replay and stop rule (``--method dreamer``)."""

from __future__ import annotations

from dataclasses import dataclass

from worldmodels.config import knob
from worldmodels.errors import UserError


@dataclass
class DreamerConfig:
    """``--method dreamer``: DreamerV3's world model and imagination actor-critic. Defaults are
    DreamerV3's where the CPU allows; the env presets size them."""

    total_steps: int = knob(100_000, mutable=True)
    """Real env steps of training (random pre-fill included)."""
    prefill: int = knob(1000, zero_ok=True)
    """Random-action steps before the agent acts and learning starts."""
    train_ratio: float = knob(512.0, positive=True)
    """Replayed steps trained on per real step (updates = steps x ratio / (batch x seq_len))."""
    batch_size: int = 16
    """Replayed windows per update."""
    seq_len: int = 64
    """Length T of the replayed windows."""
    encoder: str = "auto"
    """``auto`` (CNN for pixels, MLP for vectors), ``mlp`` or ``cnn``."""
    symlog_obs: bool = True
    """Vector observations: encode symlog(obs) and decode it with symlog-MSE (DreamerV3's
    ``symlog_inputs`` / ``symlog_mse``), or raw obs and MSE (for small, bounded ones)."""
    deter: int = 256
    """Size of the GRU's deterministic state h."""
    groups: int = 16
    """Categorical variables of the stochastic state z."""
    classes: int = 16
    """Classes of each categorical variable."""
    hidden: int = 256
    """Width of the MLPs' hidden layers."""
    layers: int = 2
    """Hidden layers of the MLPs (encoder, decoder, heads, actor, critic)."""
    cnn_depth: int = 16
    """Channels of the first CNN layer (doubled per layer) for pixels."""
    bins: int = 255
    """Two-hot bins of the reward head and the critic (symlog-spaced from -20 to 20)."""
    unimix: float = knob(0.01, unit=True)
    """Uniform mix into every categorical (latents and actor): no probability reaches 0."""
    free_nats: float = 1.0
    """Free bits: each KL term is clipped below at this many nats."""
    dyn_scale: float = 0.5
    """Weight of the dynamics KL, KL(sg(posterior) || prior)."""
    rep_scale: float = 0.1
    """Weight of the representation KL, KL(posterior || sg(prior))."""
    rew_scale: float = 1.0
    """Weight of the reward head's loss (DreamerV3: 1, beside a decoder loss summed over every
    pixel): larger makes the representation keep what predicts a sparse reward."""
    model_lr: float = knob(1e-4, rate=True)
    """Adam learning rate of the world model."""
    actor_lr: float = knob(3e-5, rate=True)
    """Adam learning rate of the actor."""
    critic_lr: float = knob(3e-5, rate=True)
    """Adam learning rate of the critic."""
    model_clip: float = knob(1000.0, positive=True)
    """Gradient-norm clip of the world model."""
    ac_clip: float = knob(100.0, positive=True)
    """Gradient-norm clip of the actor and of the critic."""
    horizon: int = 15
    """Imagined steps from every replayed posterior state."""
    imag_last: int = knob(0, zero_ok=True)
    """Imagine (and learn the replay values) from only the last this many steps of each
    replayed window (DreamerV3's ``imag_last``; 0: every step): a longer ``horizon`` for the
    same number of imagined states."""
    actor_grad_mix: float = 0.0
    """Share of the actor's objective taken by dynamics backpropagation (DreamerV1/V2): the
    imagined λ-return differentiated through the frozen world model, reward and continue heads
    and critic back to the actions (straight-through one-hots, reparameterised Gaussians); the
    rest is DreamerV3's REINFORCE (0). A low-variance gradient that says which way to push, for
    smooth dynamics where a return-weighted log-probability finds a small correction slowly."""
    gamma: float = knob(0.997, unit=True)
    """Discount of the imagined returns (times the continue head)."""
    lam: float = knob(0.95, unit=True)
    """Lambda of the lambda-returns."""
    entropy: float = 3e-4
    """Actor entropy bonus."""
    slow_critic_tau: float = knob(0.02, unit=True)
    """EMA rate of the slow critic towards the critic, per update."""
    slow_reg: float = 1.0
    """Weight of the critic's regulariser towards its slow EMA copy."""
    repval_scale: float = 0.0
    """Weight of the critic's loss on the replayed real windows (λ-returns of the real rewards
    and terminals, bootstrapped with imagined returns; DreamerV3's later ``repval``: 0.3)."""
    repval_return: str = "lambda"
    """The replay value loss's target: ``lambda``, the window's λ-return; ``mc``, where the
    step's episode has finished, its discounted return to the episode's end (Monte Carlo: the
    real rewards to a terminal, or to a time limit or the budget's cut plus the critic's value
    of the last state when it ended; the episode in progress keeps λ-returns); ``max``, the
    larger of the two (MCAC, Wilcox et al. 2022): a long episode's real return lifts values
    that bootstrapping raises only slowly (a 1,000-step horizon at gamma 0.999), and an old
    policy's short episode cannot drag them down."""
    repval_grad: bool = False
    """The replay value loss also trains the world model's representation through the
    posterior states (DreamerV3's ``repval_grad``); the model then steps after imagining."""
    return_decay: float = knob(0.99, unit=True)
    """EMA decay of the 5th-95th percentile range that scales the actor's advantages."""
    end_fraction: float = knob(0.0, unit=True)
    """Share of each batch's windows drawn to end at a stored terminal step (the rest are
    uniform): the continue head sees the rare episode ends more often."""
    expl_scale: float = 0.0
    """Weight of Plan2Explore's intrinsic reward, the disagreement of an ensemble predicting
    the next stochastic state, added to the imagined and the replayed rewards (0: off, no
    ensemble): the policy is sent where the world model has seen too little."""
    expl_heads: int = 8
    """Heads of that ensemble."""
    act_policy: str = "sample"
    """How the agent acts in its training episodes: ``sample``, the posterior's state and the
    actor's action sampled (DreamerV3's), or ``mode``, both most likely, as ``evaluate`` acts
    by default: the training episodes (the score, the stop and the best checkpoint) then
    measure the policy that is evaluated."""
    score_every: int = 1
    """Every k-th training episode (k > 1) is a scored one: it acts as ``evaluate`` does
    (``eval_policy``), and only these count towards the score (the stop, the best checkpoint,
    the curve); the others act by ``act_policy``. DreamerV3's evaluation episodes, run in the
    training env, their real steps counted. 1: no separate ones, every episode is scored as it
    acts."""
    replay_capacity: int = 5_000_000
    """Steps the replay holds (capped at total_steps: a run never needs more)."""
    replay_memory_gb: float = knob(16.0, positive=True, mutable=True)
    """RAM the replay may take (at most half the machine's); a larger replay streams its
    windows from the episode store through an LRU cache of this size."""
    target_return: float | None = knob(None, signed=True, mutable=True)
    """Stop once the mean of the last ``stop_window`` episodes reaches it (None: the env's
    reward threshold)."""
    stop_at_target: bool = knob(True, mutable=True)
    """Stop once the score reaches the target; false: train the whole budget (the curve still
    says when it first reached it)."""
    stop_window: int = knob(10, mutable=True)
    """Training episodes whose mean is the score (stop, best checkpoint, curve)."""
    stop_confirm: bool = knob(False, mutable=True)
    """After a scored episode that reaches the target, hold the agent fixed (no updates; the
    held episodes' steps owe none) to see whether it repeats: the run stops only once
    ``stop_window`` scored episodes in a row, each at the target, were played by one held
    agent; a held episode under it lets training go on. The agent that stops is then the one
    measured, not the one that learned on for a window's worth of updates after it."""
    bf16: bool = knob(True, mutable=True)
    """bf16 autocast: on CUDA the whole update; on a CPU that multiplies bf16 in hardware
    (Intel AMX) the batched passes over the imagined states (the heads, the actor's and the
    critic's losses: ~5x faster matmuls there), their outputs read in float32. Ignored on
    other CPUs, where bf16 is slower than float32."""
    eval_policy: str = knob("mode", mutable=True)
    """How ``evaluate`` (and ``--video``) acts: ``mode``, the actor's most likely action from
    the posterior's most likely state; ``sample``, both sampled as in training, where the
    score and the best checkpoint come from (DreamerV3's own eval mode samples). Sampling is
    seeded by the run's seed and ``evaluate.seed_offset``; a run may change this later."""
    eval_checkpoint: str = knob("best", mutable=True)
    """Which agent ``evaluate``, ``--video``, ``diagnose`` and the dream use: ``best``, the
    checkpoint of the best score (a mean of ``stop_window`` training episodes, so partly
    luck), or ``last``, the agent at the end of training (what DreamerV3 reports)."""

    def check(self) -> None:
        checks = [  # each number's own range: its field's rules (knob), in config/validate.py
            (self.classes >= 2 and self.bins >= 2, "dreamer.classes and dreamer.bins must be >= 2"),
            (self.unimix < 1, "dreamer.unimix must be in [0, 1)"),
            (self.gamma > 0 and self.slow_critic_tau > 0, "dreamer.gamma and "
             "dreamer.slow_critic_tau must be in (0, 1]"),
            (self.encoder in ("auto", "mlp", "cnn"), "dreamer.encoder must be auto, mlp or cnn"),
            (self.expl_heads >= 2 and self.expl_scale >= 0, "dreamer.expl_heads must be >= 2 "
             "and dreamer.expl_scale >= 0 (0: no exploration bonus)"),
            (self.eval_policy in ("mode", "sample"), "dreamer.eval_policy must be mode (the "
             "most likely action) or sample (sampled from the actor, as in training)"),
            (self.act_policy in ("mode", "sample"), "dreamer.act_policy must be sample (as "
             "DreamerV3 acts in training) or mode (the most likely action, as evaluated)"),
            (self.eval_checkpoint in ("best", "last"), "dreamer.eval_checkpoint must be best "
             "(the best training score's checkpoint) or last (the end of training)"),
            (0 <= self.actor_grad_mix <= 1, "dreamer.actor_grad_mix must be in [0, 1] (0: "
             "REINFORCE only, 1: dynamics backpropagation only)"),
            (self.repval_return in ("lambda", "mc", "max"), "dreamer.repval_return must be "
             "lambda, mc or max"),
            (self.repval_return == "lambda" or self.repval_scale > 0, "dreamer.repval_return "
             "sets the target of the replay value loss: it needs dreamer.repval_scale > 0"),
            (self.imag_last <= self.seq_len, "dreamer.imag_last must be <= dreamer.seq_len "
             "(0: imagine from every step of a window)"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise UserError(message)
