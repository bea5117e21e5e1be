"""Range checks that the type system cannot express, all before any work starts."""

from __future__ import annotations

from worldmodels.config.schema import Config
from worldmodels.errors import UserError


def validate(cfg: Config) -> None:
    """Range checks that the type system cannot express."""
    checks = [
        (cfg.collect.episodes >= 1, "collect.episodes must be >= 1"),
        (cfg.collect.workers >= 1, "collect.workers must be >= 1"),
        (0.0 <= cfg.collect.val_fraction < 1.0, "collect.val_fraction must be in [0, 1)"),
        (
            cfg.vision.kind in ("auto", "conv_vae", "mlp_vae", "mlp_ae", "identity", "vq_vae"),
            "vision.kind must be auto, conv_vae, mlp_vae, mlp_ae, identity or vq_vae",
        ),
        (cfg.vision.latent_dim >= 1, "vision.latent_dim must be >= 1"),
        (
            cfg.vision.vq_codes >= 2 and cfg.vision.vq_dim >= 1,
            "vision.vq_codes must be >= 2 and vision.vq_dim >= 1",
        ),
        (
            cfg.vision.vq_commitment >= 0 and cfg.vision.vq_dead_threshold >= 0,
            "vision.vq_commitment and vision.vq_dead_threshold must be >= 0",
        ),
        (cfg.vision.beta is None or cfg.vision.beta >= 0, "vision.beta must be >= 0"),
        (cfg.vision.epochs >= 0 and cfg.memory.epochs >= 0, "epochs must be >= 0"),
        (
            cfg.memory.kind in ("mdn_rnn", "residual_mlp", "latent_mlp", "transformer"),
            "memory.kind must be mdn_rnn, residual_mlp, latent_mlp or transformer",
        ),
        (
            cfg.memory.max_len >= 1 and cfg.memory.attn_layers >= 1,
            "memory.max_len and memory.attn_layers must be >= 1",
        ),
        (
            cfg.memory.attn_heads >= 1 and cfg.memory.hidden_dim % cfg.memory.attn_heads == 0,
            f"memory.hidden_dim ({cfg.memory.hidden_dim}) must be a multiple of "
            f"memory.attn_heads ({cfg.memory.attn_heads})",
        ),
        (
            cfg.memory.train_mode in ("single", "multistep", "teacher_forcing", "curriculum"),
            "memory.train_mode must be single, multistep, teacher_forcing or curriculum",
        ),
        (
            cfg.memory.ensemble >= 1 and cfg.memory.rollout_steps >= 1,
            "memory.ensemble and memory.rollout_steps must be >= 1",
        ),
        (cfg.memory.patience >= 0, "memory.patience must be >= 0"),
        (cfg.memory.num_mixtures >= 1, "memory.num_mixtures must be >= 1"),
        (cfg.memory.seq_len >= 1, "memory.seq_len must be >= 1"),
        (cfg.memory.temperature >= 0, "memory.temperature must be >= 0 (0 = M's mean)"),
        (cfg.dream.horizon >= 1, "dream.horizon must be >= 1"),
        (cfg.planner.horizon >= 1, "planner.horizon must be >= 1"),
        (
            cfg.planner.kind in ("auto", "enumerate", "cem", "mppi"),
            "planner.kind must be auto, enumerate, cem or mppi",
        ),
        (
            cfg.planner.aggregate in ("mean", "pessimistic"),
            "planner.aggregate must be mean or pessimistic",
        ),
        (0 <= cfg.planner.blend <= 1, "planner.blend must be in [0, 1]"),
        (
            1 <= cfg.planner.elites <= cfg.planner.population,
            "planner.elites must be between 1 and planner.population",
        ),
        (
            cfg.planner.max_sequences >= 1 and cfg.planner.iterations >= 1,
            "planner.max_sequences and planner.iterations must be >= 1",
        ),
        (cfg.mpc.random_episodes >= 1, "mpc.random_episodes must be >= 1"),
        (cfg.mpc.episodes_per_iter >= 1, "mpc.episodes_per_iter must be >= 1"),
        (cfg.dream.start in ("initial", "any"), "dream.start must be initial or any"),
        (
            cfg.dream.done_mode in ("threshold", "sample"),
            "dream.done_mode must be threshold or sample",
        ),
        (cfg.dream.start_states >= 1, "dream.start_states must be >= 1"),
        (cfg.dream.rollouts >= 1, "dream.rollouts must be >= 1"),
        (cfg.dream.iterations >= 1, "dream.iterations must be >= 1"),
        (cfg.dream.collect_episodes >= 1, "dream.collect_episodes must be >= 1"),
        (cfg.ac.num_envs >= 1 and cfg.ac.n_steps >= 1, "ac.num_envs and ac.n_steps must be >= 1"),
        (cfg.ac.total_steps >= 1, "ac.total_steps must be >= 1"),
        (cfg.ac.updates >= 0, "ac.updates must be >= 0"),
        (
            0 <= cfg.ac.gamma <= 1 and 0 <= cfg.ac.gae_lambda <= 1,
            "ac.gamma and ac.gae_lambda must be in [0, 1]",
        ),
        (cfg.ac.lr > 0, "ac.lr must be > 0"),
        (
            cfg.ac.ppo_epochs >= 1 and cfg.ac.minibatch_size >= 1,
            "ac.ppo_epochs and ac.minibatch_size must be >= 1",
        ),
        (0 <= cfg.imagination.ratio < 1, "imagination.ratio must be in [0, 1)"),
        (cfg.imagination.horizon >= 1, "imagination.horizon must be >= 1"),
        (cfg.imagination.random_steps >= 1, "imagination.random_steps must be >= 1"),
        (cfg.controller.kind in ("linear", "mlp"), "controller.kind must be linear or mlp"),
        (cfg.controller.population >= 2, "controller.population must be >= 2"),
        (cfg.controller.rollouts >= 1, "controller.rollouts must be >= 1"),
        (cfg.controller.sigma > 0, "controller.sigma must be > 0"),
        (cfg.controller.workers >= 1, "controller.workers must be >= 1"),
        (
            1 <= cfg.controller.eval_chunks <= cfg.controller.population,
            "controller.eval_chunks must be between 1 and controller.population",
        ),
        (cfg.parallel.executor in ("local", "ray"), "parallel.executor must be local or ray"),
        (cfg.parallel.task_timeout > 0, "parallel.task_timeout must be > 0"),
        (cfg.parallel.max_retries >= 0, "parallel.max_retries must be >= 0"),
        (cfg.evaluate.episodes >= 1, "evaluate.episodes must be >= 1"),
        (
            cfg.ppo.total_steps >= 1 and cfg.ppo.n_envs >= 1 and cfg.ppo.n_steps >= 1,
            "ppo.total_steps, ppo.n_envs and ppo.n_steps must be >= 1",
        ),
        (
            cfg.ppo.batch_size >= 2 and cfg.ppo.frame_stack >= 1 and cfg.ppo.stop_window >= 1,
            "ppo.batch_size must be >= 2, ppo.frame_stack and ppo.stop_window >= 1",
        ),
        (
            cfg.ppo.lr_schedule in ("constant", "linear")
            and cfg.ppo.clip_schedule in ("constant", "linear"),
            "ppo.lr_schedule and ppo.clip_schedule must be constant or linear",
        ),
        (
            cfg.ppo.policy in ("auto", "MlpPolicy", "CnnPolicy")
            and cfg.ppo.activation in ("tanh", "relu", "gelu"),
            "ppo.policy must be auto, MlpPolicy or CnnPolicy; ppo.activation tanh, relu or gelu",
        ),
        (
            cfg.ac.eval_every >= 0 and cfg.ac.eval_episodes >= 1,
            "ac.eval_every must be >= 0 and ac.eval_episodes >= 1",
        ),
        (
            cfg.ppo.eval_every >= 0 and cfg.ppo.eval_episodes >= 1,
            "ppo.eval_every must be >= 0 and ppo.eval_episodes >= 1",
        ),
        (cfg.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
        (cfg.threads >= 0, "threads must be >= 0 (0 = the machine's default)"),
        (cfg.env.image_size >= 8, "env.image_size must be >= 8"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    if cfg.env.image_size != 64 and cfg.vision.kind in ("conv_vae", "vq_vae"):
        raise UserError(
            f"vision.kind={cfg.vision.kind} needs env.image_size=64 (its 4 conv layers assume "
            "64x64)"
        )
    for section in cfg.sections.values():  # a method's own section checks itself
        check = getattr(section, "check", None)
        if check is not None:
            check()
