"""The typed config tree: one dataclass per section, each field documented (its docstring is
its help). Loading and merging are in ``merge.py``, range checks in ``validate.py``, the preset
overlays in ``presets/*.yaml``. The agents' sections are in ``agents.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worldmodels.config.agents import (
    ActorCriticConfig,
    ImaginationConfig,
    MpcConfig,
    PlannerConfig,
    PpoConfig,
)


@dataclass
class EnvConfig:
    id: str = ""
    """Gymnasium id (``CartPole-v1``, ``ALE/Pong-v5``) or ``package.module:ClassName``."""
    frame_skip: int = 0
    """Repeat each action this many env steps (0 = the env's own default)."""
    discrete_actions: bool = False
    """Use the env's discretised action set (CarRacing: 5 actions instead of 3 continuous)."""
    max_episode_steps: int = 0
    """Truncate episodes after this many agent steps (0 = the env's own limit)."""
    image_size: int = 64
    """Pixel observations are resized to image_size x image_size RGB."""
    time_feature: bool = False
    """Vector envs: append the fraction of the env's own step limit used so far (0 to 1) to
    the observation and end the episode at that limit as a terminal rather than a cut, so a
    policy can learn what running out of time costs (Pardo et al. 2018, "Time Limits in
    Reinforcement Learning"; rl-zoo's time feature)."""


@dataclass
class CollectConfig:
    episodes: int = 200
    """Number of episodes the store should hold; re-running continues to this count."""
    workers: int = 1
    """Worker processes used for collection (1 = in this process)."""
    policy: str = "random"
    """``random``, or a run directory whose trained agent (V+M+C) acts."""
    val_fraction: float = 0.1
    """Fraction of episodes (chosen by a fixed hash of their index) held out from training."""


@dataclass
class VisionConfig:
    kind: str = "auto"
    """``conv_vae`` (pixels), ``mlp_vae`` (vectors), ``identity`` (vectors: z = the normalised
    state, for dynamics models on the state itself), ``mlp_ae`` (vectors, seed 004),
    ``vq_vae`` (pixels or vectors: a codebook-quantised latent, seed 000) or ``auto`` to pick
    by observation type."""
    latent_dim: int = 32
    """Size of the latent z."""
    hidden_dims: list[int] = field(default_factory=lambda: [256, 128])
    """Hidden layer sizes of the MLP VAE encoder (decoder mirrors them)."""
    batch_norm: bool = True
    """BatchNorm after each conv layer of the ConvVAE encoder."""
    beta: float | None = None
    """beta of the beta-VAE, the weight of the KL term. None = the model's default: 4.0 for the
    ConvVAE (the paper's setting); 0.05 for the MLP VAE, because on low-dimensional state
    vectors a larger beta discards the very state the controller needs (beta = 1 left CartPole's
    latent explaining only 45-70% of each state variable and CMA-ES stalled near 145)."""
    beta_anneal_epochs: int = 3
    """beta rises linearly from 0 to ``beta`` over this many epochs (0 = no annealing)."""
    kl_tolerance: float = 0.5
    """Free nats per latent dimension: the KL term is max(KL, kl_tolerance * latent_dim)."""
    lr: float = 1e-4
    """Adam learning rate."""
    epochs: int = 10
    """Training epochs over the training episodes."""
    batch_size: int = 64
    """Frames per batch."""
    chunk_episodes: int = 64
    """Episodes held in RAM at once by the frame loader (bounds memory on big stores)."""
    vq_codes: int = 128
    """vq_vae: codebook size (number of code vectors)."""
    vq_dim: int = 4
    """vq_vae: size of each code vector. On pixels z is a 4x4 grid of them (16 * vq_dim
    numbers, ``latent_dim`` is not used); on vectors ``latent_dim`` must be a multiple of it."""
    vq_commitment: float = 0.25
    """vq_vae: weight of the commitment loss ||z_e - sg[e]||^2 (van den Oord et al.: 0.25)."""
    vq_dead_threshold: float = 0.05
    """vq_vae: a code whose moving-average usage falls below this fraction of uniform usage
    (1 / vq_codes) is re-initialised to an encoder output of the current batch (0 = never)."""


@dataclass
class MemoryConfig:
    kind: str = "mdn_rnn"
    """Memory model: ``mdn_rnn`` (LSTM + mixture density), ``residual_mlp`` (deterministic
    next = z + residual_scale * delta, LayerNorm, Markov; seed 003) or ``latent_mlp`` (seed
    004: an MLP on [z, a] predicts z_{t+1}; reward and done heads read the predicted latent)
    or ``transformer`` (seed 000: causal attention over the last ``max_len`` [z, a], mixture
    density output as the MDN-RNN's)."""
    attn_layers: int = 2
    """transformer: attention blocks."""
    attn_heads: int = 4
    """transformer: attention heads (``hidden_dim`` must be a multiple)."""
    max_len: int = 32
    """transformer: context window, the positions each step attends to (itself included);
    acting keeps the last max_len - 1 as its state, so memory does not grow."""
    residual_scale: float = 0.1
    """residual_mlp: the scale of the predicted delta."""
    blocks: int = 2
    """residual_mlp: residual hidden blocks (width ``hidden_dim``)."""
    ensemble: int = 1
    """Independently initialised members of M (any kind); predictions are their mean (a
    random member per sequence when sampling at tau > 0) and their disagreement is reported
    as uncertainty."""
    train_mode: str = "single"
    """residual_mlp / latent_mlp: ``single`` (one-step), ``multistep`` (open-loop rollout loss
    through all steps), ``teacher_forcing`` (rollouts fed the truth with probability p) or
    ``curriculum`` (rollout length 1 -> rollout_steps)."""
    rollout_steps: int = 6
    """residual_mlp / latent_mlp: steps of the multistep / teacher-forcing / curriculum rollouts."""
    step_weights: list[float] = field(default_factory=list)
    """residual_mlp / latent_mlp: weight of each rollout step's loss (empty = all 1)."""
    feature_weights: list[float] = field(default_factory=list)
    """residual_mlp / latent_mlp: weight of each z dimension's squared error (empty = all 1)."""
    tf_start: float = 1.0
    """teacher_forcing: the probability of feeding the truth at epoch 0 ..."""
    tf_decay: float = 0.9
    """... multiplied by this every epoch (a decaying schedule) ..."""
    tf_mix: float | None = None
    """... unless this fixed mix is set (e.g. 0.5: half truth, half own predictions)."""
    curriculum_epochs: int = 2
    """curriculum: epochs at each rollout length."""
    joint: bool = False
    """Train V and M together with one loss (seed 004): V's loss + M's loss, M's inputs carrying
    gradient into V's encoder, its next-latent targets detached. V starts from train-vision's
    result (``vision.epochs=0``: from scratch). Seed 004's model: ``vision.kind=mlp_ae``,
    ``memory.kind=latent_mlp`` (the ``latent-mlp`` preset)."""
    patience: int = 0
    """Early stopping: stop when the validation loss has not improved for this many epochs
    (0 = train all epochs)."""
    hidden_dim: int = 256
    """LSTM hidden size; the transformer's model width; the MLP models' hidden width."""
    num_mixtures: int = 5
    """Gaussians in the mixture density output (per latent dimension)."""
    temperature: float = 1.0
    """Sampling temperature tau when dreaming (logits / tau, sigma * sqrt(tau)); 0 = the
    mixture mean (a deterministic dream). ``--tau`` sets it."""
    seq_len: int = 32
    """Training sequence length."""
    carry_state: bool = True
    """Recurrent M: start each training window from M's state carried from the episode's
    first step (truncated backpropagation through time), so M trains on the states it acts
    from past ``seq_len``; false = every window from the zero state."""
    lr: float = 1e-3
    """Adam learning rate."""
    epochs: int = 20
    """Training epochs."""
    batch_size: int = 32
    """Sequences per batch."""
    reward_weight: float = 1.0
    """Weight of the reward-head MSE in the memory loss."""
    done_weight: float = 1.0
    """Weight of the done-head BCE in the memory loss."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    sample_latents: bool = True
    """Train on z sampled from V's posterior (as in the paper) rather than its mean."""
    chunk_episodes: int = 256
    """Episodes of latents held in RAM at once by the sequence loader."""


@dataclass
class ControllerConfig:
    kind: str = "linear"
    """``linear`` on [z, h] (the paper) or ``mlp``."""
    hidden_dims: list[int] = field(default_factory=lambda: [32])
    """Hidden sizes of the ``mlp`` controller (tanh)."""
    population: int = 64
    """CMA-ES population size."""
    sigma: float = 0.5
    """CMA-ES initial step size."""
    rollouts: int = 4
    """Episodes per candidate; fitness is their mean return."""
    generations: int = 50
    """Maximum CMA-ES generations."""
    eval_every: int = 1
    """Evaluate the distribution mean every this many generations."""
    eval_episodes: int = 16
    """Episodes for that evaluation (these real steps are counted too)."""
    target_return: float | None = None
    """Stop when the evaluated mean reaches this (None = the env's reward_threshold)."""
    max_steps: int = 0
    """Cap on steps per training episode (0 = the env's limit)."""
    workers: int = 1
    """Worker processes (or Ray tasks in flight) evaluating the population."""
    eval_chunks: int = 4
    """The population is evaluated in this many blocks (tasks). Fixed apart from ``workers``
    so that 1 or N workers compute exactly the same thing: the same seed gives the same
    CMA-ES trajectory. Use at least ``workers`` blocks to keep every worker busy."""


@dataclass
class DreamConfig:
    """The dream env: M (with its reward and done heads) stepped as an environment."""

    horizon: int = 1000
    """Longest dream episode (also capped by the real env's time limit)."""
    start: str = "initial"
    """Dream episodes start from real stored states: ``initial`` (episode starts, like a
    real reset) or ``any`` (any stored time step)."""
    done_mode: str = "sample"
    """``sample``: an episode ends with a Bernoulli draw of the done head's p; ``threshold``:
    where p > 0.5. Sampling is the default: on CartPole a dream-trained controller scored
    57 in the real env with ``threshold`` (it learnt to stay where p < 0.5) and 308 with
    ``sample``, at the same dream score."""
    start_states: int = 20_000
    """Real states kept as dream starting points (every episode start is always kept)."""
    rollouts: int = 16
    """Dream episodes per CMA-ES candidate (``--method dream``); dreams are cheap."""
    eval_episodes: int = 256
    """Dream episodes of each evaluation of the CMA-ES mean and generation best (the stop
    test and the best checkpoint). With 20, a lucky candidate scored 495+ in the dream by
    generation 3-7 and stopped training; it then scored 162-275 in the real env."""
    iterations: int = 1
    """The paper's iterative procedure: after each dream-trained controller (but the last),
    collect ``collect_episodes`` real episodes with it, retrain M on all data and train a
    new controller in the improved dream (1 = a single pass on random rollouts)."""
    collect_episodes: int = 20
    """Real episodes the controller collects per extra iteration."""
    retrain_epochs: int = 10
    """Epochs of M's retraining per extra iteration."""


@dataclass
class ParallelConfig:
    executor: str = "local"
    """``local`` (processes on this machine) or ``ray`` (pip install 'worldmodels[ray]')."""
    ray_address: str | None = None
    """Ray cluster address (``auto`` = the running local cluster); None starts a private one."""
    task_timeout: float = 600.0
    """Seconds a task may run before its worker is killed and the task retried."""
    max_retries: int = 2
    """Retries of a task whose worker died or timed out, before the run stops."""


@dataclass
class EvaluateConfig:
    episodes: int = 100
    """Evaluation episodes in the real env."""
    seed_offset: int = 1_000_000
    """Evaluation episode seeds start at seed + seed_offset, apart from every training seed."""
    batch_envs: int = 50
    """Envs stepped together during evaluation."""
    planner: str | None = None
    """Act by planning with M at evaluation (``auto``, ``enumerate``, ``cem``, ``mppi``; the
    ``planner`` section sets it up); None = the method's own agent."""


SECTIONS: dict[str, type] = {}
"""Config sections a method file adds (``register_section``): name -> dataclass. A section's
class may define ``MUTABLE`` (field names a resumed run may change) and ``check(self)`` (range
checks raising ``UserError``)."""


def register_section(name: str) -> Callable[[type], type]:
    """Class decorator: a method's own config section, ``name.<field>`` in files and --set."""

    def add(cls: type) -> type:
        SECTIONS[name] = cls
        return cls

    return add


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    dream: DreamConfig = field(default_factory=DreamConfig)
    ac: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    imagination: ImaginationConfig = field(default_factory=ImaginationConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    mpc: MpcConfig = field(default_factory=MpcConfig)
    ppo: PpoConfig = field(default_factory=PpoConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    method: str = "classic"
    """Training method: one of the registered methods (``worldmodels envs`` lists them; the
    default, ``classic``, is V -> M -> CMA-ES controller in the real env)."""
    seed: int = 0
    """Master seed: every episode, batch and CMA-ES generation derives from it."""
    device: str = "auto"
    """``auto`` (cuda if available), ``cpu`` or ``cuda``."""
    threads: int = 0
    """Math threads of this process (``torch.set_num_threads``); 0 = the machine's default,
    written down as the number it was when the run was created. It changes results: a2c seed
    0 on CartPole scored 315.2 with one thread and 500.0 with two."""
    presets: list[str] = field(default_factory=list)
    """Named presets applied on top of the env preset (e.g. ``debug``)."""
    sections: dict[str, Any] = field(
        default_factory=lambda: {name: cls() for name, cls in SECTIONS.items()}
    )
    """The registered methods' own sections (``register_section``), by name."""

    def section(self, name: str) -> Any:
        """A method's own config section."""
        return self.sections[name]
