"""The typed config tree: one dataclass per section, each field documented (its docstring is
its help) and its rules declared on it (``knob``, ``fields.py``). Here are the sections every
method shares (the env, collection, V, M, the CMA-ES controller, the dream env, the planner,
evaluation, parallelism); a method's own sections are declared beside its code and added with
``declare_section`` when the method registers. Loading and merging are in ``merge.py``, range
checks in ``validate.py``, the preset overlays in ``presets/*.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from worldmodels.config.coerce import typed_section
from worldmodels.config.fields import knob
from worldmodels.seeding import MAX_RUN_SEED


@dataclass
class EnvConfig:
    id: str = ""
    """Gymnasium id (``CartPole-v1``, ``ALE/Pong-v5``) or ``package.module:ClassName``."""
    frame_skip: int = knob(0, zero_ok=True)
    """Repeat each action this many env steps (0 = the env's own default)."""
    discrete_actions: bool = False
    """Use the env's discretised action set (CarRacing: 5 actions instead of 3 continuous)."""
    max_episode_steps: int = knob(0, zero_ok=True)
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
    episodes: int = knob(200, mutable=True)
    """Number of episodes the store should hold; re-running continues to this count."""
    workers: int = knob(1, mutable=True)
    """Worker processes used for collection (1 = in this process)."""
    policy: str = "random"
    """``random``, or a run directory whose trained agent (V+M+C) acts."""
    val_fraction: float = 0.1
    """Fraction of episodes (chosen by a fixed hash of their index) held out from training."""


@dataclass
class VisionConfig:
    kind: str = "auto"
    """``conv_vae`` (pixels), ``mlp_vae`` (vectors), ``identity`` (vectors: z = the normalised
    state, for dynamics models on the state itself), ``mlp_ae`` (vectors: a deterministic
    autoencoder, for ``memory.joint``), ``vq_vae`` (pixels or vectors: a codebook-quantised
    latent) or ``auto`` to pick by observation type."""
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
    beta_anneal_epochs: int = knob(3, zero_ok=True)
    """beta rises linearly from 0 to ``beta`` over this many epochs (0 = no annealing)."""
    kl_tolerance: float = 0.5
    """Free nats per latent dimension: the KL term is max(KL, kl_tolerance * latent_dim)."""
    lr: float = knob(1e-4, rate=True)
    """Adam learning rate."""
    epochs: int = knob(10, zero_ok=True, mutable=True)
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
    next = z + residual_scale * delta, LayerNorm, Markov), ``latent_mlp`` (an MLP on [z, a]
    predicts z_{t+1}; reward and done heads read the predicted latent) or ``transformer``
    (causal attention over the last ``max_len`` [z, a], mixture density output as the
    MDN-RNN's)."""
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
    tf_start: float = knob(1.0, unit=True)
    """teacher_forcing: the probability of feeding the truth at epoch 0 ..."""
    tf_decay: float = knob(0.9, unit=True)
    """... multiplied by this every epoch (a decaying schedule) ..."""
    tf_mix: float | None = knob(None, unit=True)
    """... unless this fixed mix is set (e.g. 0.5: half truth, half own predictions)."""
    curriculum_epochs: int = knob(2, zero_ok=True)
    """curriculum: epochs at each rollout length."""
    joint: bool = False
    """Train V and M together with one loss: V's loss + M's loss, M's inputs carrying gradient
    into V's encoder, its next-latent targets detached. V starts from train-vision's result
    (``vision.epochs=0``: from scratch). The ``latent-mlp`` preset's model:
    ``vision.kind=mlp_ae``, ``memory.kind=latent_mlp``."""
    patience: int = knob(0, zero_ok=True)
    """Early stopping: stop when the validation loss has not improved for this many epochs
    (0 = train all epochs)."""
    hidden_dim: int = 256
    """LSTM hidden size; the transformer's model width; the MLP models' hidden width."""
    num_mixtures: int = 5
    """Gaussians in the mixture density output (per latent dimension)."""
    heads: str = "hidden"
    """mdn_rnn / transformer: what the reward and done heads read. ``hidden``: M's feature
    h_t, linearly, before z_{t+1} is drawn (the paper's MDN-RNN); ``next``: z_{t+1}, each
    through an MLP, so an episode's end is read off the state it reaches (in a dream, M's own
    sample of it). On CartPole the ``hidden`` done head gives every state about the data's
    end rate (recall 0 at p > 0.5), so dream episodes end by chance, not by falling.
    ``next`` cannot see a reward that depends on the action itself (a fuel cost)."""
    temperature: float = knob(1.0, mutable=True)
    """Sampling temperature tau when dreaming (logits / tau, sigma * sqrt(tau)); 0 = the
    mixture mean (a deterministic dream). ``--tau`` sets it."""
    seq_len: int = 32
    """Training sequence length."""
    carry_state: bool = True
    """Recurrent M: start each training window from M's state carried from the episode's
    first step (truncated backpropagation through time), so M trains on the states it acts
    from past ``seq_len``; false = every window from the zero state."""
    lr: float = knob(1e-3, rate=True)
    """Adam learning rate."""
    epochs: int = knob(20, zero_ok=True, mutable=True)
    """Training epochs."""
    batch_size: int = 32
    """Sequences per batch."""
    reward_weight: float = 1.0
    """Weight of the reward-head MSE in the memory loss."""
    done_weight: float = 1.0
    """Weight of the done-head BCE in the memory loss."""
    grad_clip: float = knob(1.0, positive=True)
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
    sigma: float = knob(0.5, positive=True, high=1e3)
    """CMA-ES initial step size (at most 1000: larger overflows cma)."""
    rollouts: int = 4
    """Episodes per candidate; fitness is their mean return."""
    generations: int = knob(50, mutable=True)
    """Maximum CMA-ES generations."""
    eval_every: int = knob(1, mutable=True)
    """Evaluate the distribution mean every this many generations."""
    eval_episodes: int = knob(16, mutable=True)
    """Episodes for that evaluation (these real steps are counted too)."""
    target_return: float | None = knob(None, signed=True, mutable=True)
    """Stop when the evaluated mean reaches this (None = the env's reward_threshold)."""
    max_steps: int = knob(0, zero_ok=True)
    """Cap on steps per training episode (0 = the env's limit)."""
    workers: int = knob(1, mutable=True)
    """Worker processes (or Ray tasks in flight) evaluating the population."""
    eval_chunks: int = 4
    """The population is evaluated in this many blocks (tasks). Fixed apart from ``workers``
    so that 1 or N workers compute exactly the same thing: the same seed gives the same
    CMA-ES trajectory. Use at least ``workers`` blocks to keep every worker busy."""


@dataclass
class DreamConfig:
    """The dream env: M (with its reward and done heads) stepped as an environment."""

    horizon: int = knob(1000, mutable=True)
    """Longest dream episode (also capped by the real env's time limit)."""
    start: str = knob("initial", mutable=True)
    """Dream episodes start from real stored states: ``initial`` (episode starts, like a
    real reset) or ``any`` (any stored time step)."""
    done_mode: str = knob("sample", mutable=True)
    """``sample``: an episode ends with a Bernoulli draw of the done head's p; ``threshold``:
    where p > 0.5. Sampling is the default: on CartPole a dream-trained controller scored
    57 in the real env with ``threshold`` (it learnt to stay where p < 0.5) and 308 with
    ``sample``, at the same dream score."""
    start_states: int = knob(20_000, mutable=True)
    """Real states kept as dream starting points (every episode start is always kept)."""
    rollouts: int = knob(16, mutable=True)
    """Dream episodes per CMA-ES candidate (``--method dream``); dreams are cheap."""
    eval_episodes: int = knob(256, mutable=True)
    """Dream episodes of each evaluation of the CMA-ES mean and generation best (the stop
    test and the best checkpoint). With 20, a lucky candidate scored 495+ in the dream by
    generation 3-7 and stopped training; it then scored 162-275 in the real env."""
    iterations: int = knob(1, mutable=True)
    """The paper's iterative procedure: after each dream-trained controller (but the last),
    collect ``collect_episodes`` real episodes with it, retrain M on all data and train a
    new controller in the improved dream (1 = a single pass on random rollouts)."""
    collect_episodes: int = knob(20, mutable=True)
    """Real episodes the controller collects per extra iteration."""
    retrain_epochs: int = knob(10, zero_ok=True, mutable=True)
    """Epochs of M's retraining per extra iteration."""


@dataclass
class ParallelConfig:
    executor: str = knob("local", mutable=True)
    """``local`` (processes on this machine) or ``ray`` (pip install 'worldmodels[ray]')."""
    ray_address: str | None = knob(None, mutable=True)
    """Ray cluster address (``auto`` = the running local cluster); None starts a private one."""
    task_timeout: float = knob(600.0, positive=True, mutable=True)
    """Seconds a task may run before its worker is killed and the task retried."""
    max_retries: int = knob(2, zero_ok=True, mutable=True)
    """Retries of a task whose worker died or timed out, before the run stops."""


@dataclass
class EvaluateConfig:
    episodes: int = knob(100, mutable=True)
    """Evaluation episodes in the real env."""
    seed_offset: int = knob(0, zero_ok=True, mutable=True)
    """Index of the first evaluation episode in the run's own evaluation stream of reset
    seeds, which no training, selection or held-out episode of any run shares
    (``worldmodels.seeding``); a later index gives other episodes."""
    batch_envs: int = knob(50, mutable=True)
    """Envs stepped together during evaluation."""
    planner: str | None = knob(None, mutable=True)
    """Act by planning with M at evaluation (``auto``, ``enumerate``, ``cem``, ``mppi``; the
    ``planner`` section sets it up); None = the method's own agent."""


@dataclass
class PlannerConfig:
    """Model-predictive control with M (``--method mpc`` and ``evaluate --planner`` on a run of
    any method). Every candidate of one decision is a row of one ``imagine`` batch. How to plan
    never invalidates a checkpoint (the planner reads V and M as they are): a resumed run may
    change every key."""

    kind: str = knob("auto", mutable=True)
    """``enumerate`` (discrete: every action sequence, or ``max_sequences`` random ones),
    ``cem`` or ``mppi`` (continuous), ``auto`` = enumerate / cem by action space."""
    horizon: int = knob(8, mutable=True)
    """Planning horizon H (``--planning-horizon``)."""
    gamma: float = knob(0.99, unit=True, mutable=True)
    """Discount of predicted rewards; a critic's value (if the run has one) at step H."""
    aggregate: str = knob("mean", mutable=True)
    """With an ensemble M: ``mean`` (the members' mean prediction) or ``pessimistic`` (each
    member rolled alone, the worst value kept)."""
    blend: float = knob(1.0, unit=True, mutable=True)
    """Weight of planning against a base actor-critic policy: p = (1 - w) pi + w onehot(plan);
    1 = planning alone (``--use-improved-controller``: 0.3)."""
    max_sequences: int = knob(256, mutable=True)
    """Discrete: enumerate all A^H sequences up to this many, else sample this many."""
    population: int = knob(256, mutable=True)
    """CEM / MPPI: action sequences sampled per iteration."""
    elites: int = knob(32, mutable=True)
    """CEM: the best sequences the Gaussian is refit to."""
    iterations: int = knob(4, mutable=True)
    """CEM / MPPI: refinement rounds per decision."""
    init_std: float = knob(0.5, positive=True, mutable=True)
    """CEM / MPPI: sampling std as a fraction of half the action range."""
    mppi_lambda: float = knob(1.0, positive=True, mutable=True)
    """MPPI: temperature of the softmax over sequence values."""
    seed: int = knob(0, zero_ok=True, mutable=True)
    """Seed of the planner's sampling (offset by the run's seed)."""


SECTIONS: dict[str, type] = {}
"""The methods' own config sections, by name (``declare_section``). A section's class declares
its fields' rules with ``knob`` and may define ``check(self)`` (its relations, raising
``UserError``)."""

S = TypeVar("S")


def declare_section(name: str, cls: type[S]) -> type[S]:
    """Add a method's own section, ``name.<field>`` in files and --set (a method's
    ``own_sections`` are declared when it registers). Declaring it again is a no-op."""
    if name in Config.__dataclass_fields__:
        raise ValueError(f"config section '{name}' is one of the shared sections")
    known = SECTIONS.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"config section '{name}' is declared twice ({known} and {cls})")
    SECTIONS[name] = cls
    return cls


def section_name(cls: type) -> str:
    """The name a section class was declared under."""
    for name, known in SECTIONS.items():
        if known is cls:
            return name
    raise LookupError(
        f"{cls.__name__} is not a declared config section; import worldmodels.registry "
        "(it registers every method and its sections)"
    )


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    dream: DreamConfig = field(default_factory=DreamConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    method: str = knob("classic", mutable=True)
    """Training method: one of the registered methods (``worldmodels envs`` lists them; the
    default, ``classic``, is V -> M -> CMA-ES controller in the real env)."""
    seed: int = knob(0, zero_ok=True, high=MAX_RUN_SEED)
    """Master seed: every episode, batch and CMA-ES generation derives from it (at most
    2**27 - 1, so that every episode's reset seed is its own: ``worldmodels.seeding``)."""
    device: str = knob("auto", mutable=True)
    """``auto`` (cuda if available), ``cpu`` or ``cuda``."""
    threads: int = knob(0, zero_ok=True, mutable=True)
    """Math threads of this process (``torch.set_num_threads``); 0 = ``OMP_NUM_THREADS`` where
    it is set, else one, written down as the number it was when the run was created. One
    thread keeps its pace beside other work, where two threads' barriers made a dreamer update
    11x slower on 2 cores. It changes results: a2c seed 0 on CartPole scored 315.2 with one
    thread and 500.0 with two."""
    presets: list[str] = field(default_factory=list)
    """Named presets applied on top of the env preset (e.g. ``debug``)."""
    sections: dict[str, Any] = field(
        default_factory=lambda: {name: cls() for name, cls in SECTIONS.items()}
    )
    """The methods' own sections (``declare_section``), by name; in files and --set they sit
    at the top level beside the shared ones. A section read from a file before its method was
    registered is kept as the plain mapping it was until then (``section`` types it)."""

    @overload
    def section(self, key: type[S]) -> S: ...

    @overload
    def section(self, key: str) -> Any: ...

    def section(self, key: type[Any] | str) -> Any:
        """A method's own section, typed by its class: ``cfg.section(PpoConfig)``. (By name,
        ``cfg.section("ppo")``, it is untyped: for scripts.)"""
        name = key if isinstance(key, str) else section_name(key)
        value = self.sections.get(name)
        cls = SECTIONS.get(name)
        if cls is None:
            raise LookupError(f"no config section '{name}' is declared")
        if not isinstance(value, cls):  # absent, or read before its method was registered
            self.sections[name] = value = typed_section(name, cls, value)
        return value
