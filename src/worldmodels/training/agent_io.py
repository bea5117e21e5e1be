"""Checkpoints of the actor-critic agents (a2c, wm-ppo): ``agent/last`` (everything to resume)
and ``agent/best`` (the weights at the best rolling training return), weights-only."""

from __future__ import annotations

from typing import Any

import torch

from worldmodels.config import Config, to_dict
from worldmodels.envs import EnvSpec
from worldmodels.rl.actor_critic import ActorCritic
from worldmodels.runs import RunDir, check_spec, model_payload


def ac_kwargs(cfg: Config, feature_dim: int) -> dict[str, Any]:
    return {
        "in_dim": feature_dim,
        "hidden": list(cfg.ac.hidden_dims),
        "layer_norm": cfg.ac.layer_norm,
    }


def build_ac(kwargs: dict[str, Any], spec: EnvSpec) -> ActorCritic:
    return ActorCritic(kwargs["in_dim"], spec, kwargs["hidden"], kwargs["layer_norm"])


def save_agent(
    run: RunDir,
    name: str,
    cfg: Config,
    spec: EnvSpec,
    ac: ActorCritic,
    progress: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    run.save(
        f"agent/{name}",
        {
            "model": model_payload("actor_critic", ac_kwargs(cfg, ac.in_dim), ac),
            "spec": spec.shape_signature(),
            "config": to_dict(cfg),
            "progress": progress,
            **(extra or {}),
        },
    )


def load_agent(run: RunDir, spec: EnvSpec, device: torch.device, name: str = "best") -> ActorCritic:
    payload = run.load(f"agent/{name}")
    check_spec(payload, spec, str(run.ckpt_path(f"agent/{name}")))
    ac = build_ac(payload["model"]["kwargs"], spec)
    ac.load_state_dict(payload["model"]["state_dict"])
    return ac.to(device).eval()


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state()}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
