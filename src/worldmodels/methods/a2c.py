"""``--method a2c``: A2C with GAE on [z, h], V and M trained end to end with it;
optionally V (``ac.pretrain_vision``) and M (``ac.pretrain_memory``) pre-trained on random
episodes first (``training/a2c.py``)."""

from __future__ import annotations

import torch

from worldmodels.config import to_dict
from worldmodels.methods.actor_critic import ActorCriticMethod
from worldmodels.methods.base import Context, checkpoints, register
from worldmodels.methods.stages import (
    stage_collect,
    stage_memory,
    stage_vision,
)
from worldmodels.models.memory import build_memory
from worldmodels.models.vision import build_vision
from worldmodels.runs import model_payload
from worldmodels.training.a2c import A2cUpdate
from worldmodels.training.actor_critic_config import ActorCriticConfig
from worldmodels.training.memory import memory_kwargs
from worldmodels.training.vision import vision_kind, vision_kwargs

NS = "a2c"


def init_untrained_world(ctx: Context) -> None:
    """A2C without pre-training: V and M start from their random initialisation (written as
    their checkpoints so the run's layout is the same; A2C then trains them end to end)."""
    header = {"spec": ctx.spec.shape_signature(), "config": to_dict(ctx.cfg)}
    untrained = {"epoch": 0, "complete": True, "untrained": True}
    torch.manual_seed(ctx.cfg.seed + 100)
    if not ctx.run.has("vision/best"):
        kind, kw = vision_kind(ctx.cfg, ctx.spec), vision_kwargs(ctx.cfg, ctx.spec)
        payload = {"model": model_payload(kind, kw, build_vision(kind, kw)), **header}
        ctx.run.save("vision/best", {**payload, "progress": untrained})
    if not ctx.run.has("memory/best"):
        torch.manual_seed(ctx.cfg.seed + 200)
        kw = memory_kwargs(ctx.cfg, ctx.spec)
        model = build_memory(ctx.cfg.memory.kind, kw)
        ctx.run.save(
            "memory/best",
            {
                "model": model_payload(ctx.cfg.memory.kind, kw, model),
                **header,
                "vision_sha256": ctx.run.digest("vision/best"),
                "progress": untrained,
            },
        )


@register
class A2c(ActorCriticMethod):
    """V and M pre-trained (optional), then trained with the actor-critic's loss."""

    name = "a2c"
    summary = "A2C with V and M trained end to end, plus imagined rollouts"
    artifacts = checkpoints(NS)
    agent = NS

    def train(self, ctx: Context, skip: set[str]) -> None:
        ac = ctx.cfg.section(ActorCriticConfig)
        pretrain = ac.pretrain_vision or ac.pretrain_memory
        if pretrain and "collect" not in skip:
            stage_collect(ctx)
        if pretrain and "vision" not in skip:
            stage_vision(ctx)
        if ac.pretrain_memory and "memory" not in skip:
            stage_memory(ctx)
        if "controller" in skip:
            return
        init_untrained_world(ctx)
        self.run_agent(ctx, lambda world: A2cUpdate(ctx.cfg, ctx.spec, world))
