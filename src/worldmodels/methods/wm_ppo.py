"""``--method wm-ppo``: random steps -> pre-train V and M -> PPO on real + imagined
experience, M retrained on the growing real data (``training/wm_ppo.py``)."""

from __future__ import annotations

from typing import Any

from worldmodels.errors import UserError
from worldmodels.methods.actor_critic import ActorCriticMethod
from worldmodels.methods.base import CONFIG_ADAPTERS, WORLD_STAGES, Context, checkpoints, register
from worldmodels.methods.stages import (
    stage_collect_steps,
    stage_memory,
    stage_vision,
)
from worldmodels.training.actor_critic_config import ImaginationConfig
from worldmodels.training.wm_ppo import WmPpoUpdate

NS = "wm_ppo"

# a ``world_model:`` YAML section (vae / mdn_rnn / training / data_collection) -> this config's
# keys
WORLD_MODEL_YAML_KEYS: dict[tuple[str, str], tuple[str, ...]] = {
    ("vae", "latent_dim"): ("vision.latent_dim",),
    ("vae", "hidden_dims"): ("vision.hidden_dims",),
    ("vae", "beta"): ("vision.beta",),
    ("vae", "learning_rate"): ("vision.lr",),
    ("mdn_rnn", "hidden_dim"): ("memory.hidden_dim",),
    ("mdn_rnn", "num_mixtures"): ("memory.num_mixtures",),
    ("mdn_rnn", "temperature"): ("memory.temperature",),
    ("mdn_rnn", "learning_rate"): ("memory.lr",),
    ("training", "pretrain_epochs"): ("vision.epochs", "memory.epochs"),
    ("training", "imagination_ratio"): ("imagination.ratio",),
    ("training", "imagination_horizon"): ("imagination.horizon",),
    ("data_collection", "random_collection_steps"): ("imagination.random_steps",),
}


def translate_world_model_yaml(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Accept a ``world_model:`` section (vae / mdn_rnn / training / data_collection: the
    World Model PPO trainer's config files) as the equivalent keys of this config."""
    section = data.get("world_model")
    if section is None:
        return data
    if not isinstance(section, dict):
        raise UserError(f"{source}: world_model must be a mapping (vae:, mdn_rnn:, training:)")
    out = {k: v for k, v in data.items() if k != "world_model"}
    out.setdefault("method", WmPpo.name)
    for group, values in section.items():
        if not isinstance(values, dict):
            raise UserError(f"{source}: world_model.{group} must be a mapping")
        for key, value in values.items():
            targets = WORLD_MODEL_YAML_KEYS.get((group, key))
            if targets is None:
                known = ", ".join(f"{g}.{k}" for g, k in WORLD_MODEL_YAML_KEYS)
                raise UserError(f"{source}: unknown key world_model.{group}.{key}; known: {known}")
            for target in targets:
                sec, name = target.split(".")
                out.setdefault(sec, {})[name] = value
    return out


@register
class WmPpo(ActorCriticMethod):
    """PPO updates on real rollouts plus imagined ones from M, M retrained as data grows."""

    name = "wm-ppo"
    summary = "PPO on real + imagined experience from M"
    artifacts = checkpoints(NS)
    world_stages = WORLD_STAGES
    agent = NS

    def train(self, ctx: Context, skip: set[str]) -> None:
        if "collect" not in skip:
            stage_collect_steps(ctx, ctx.cfg.section(ImaginationConfig).random_steps)
        if "vision" not in skip:
            stage_vision(ctx)
        if "memory" not in skip:
            stage_memory(ctx)
        if "controller" in skip:
            return
        self.run_agent(
            ctx, lambda world: WmPpoUpdate(ctx.run, ctx.cfg, ctx.spec, world, ctx.writer)
        )


CONFIG_ADAPTERS.append(translate_world_model_yaml)
