"""``--method ppo``: the model-free baseline, Stable-Baselines3's PPO on the real env
(``training/ppo_baseline.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from worldmodels.methods.base import Context, MethodBase, PolicyFactory, checkpoints, register
from worldmodels.methods.stages import agent_steps, require_resume, timed
from worldmodels.training.ppo_baseline import PpoConfig, load_ppo_policy, train_ppo_baseline

NS = "ppo"


@register
class Ppo(MethodBase):
    name = "ppo"
    summary = "model-free baseline: Stable-Baselines3 PPO on the raw observations"
    sections = ("ppo",)
    own_sections: ClassVar[Mapping[str, type]] = {"ppo": PpoConfig}
    artifacts = checkpoints(NS)

    def train(self, ctx: Context, skip: set[str]) -> None:
        if "controller" in skip:
            return
        require_resume(ctx, NS)
        with timed(ctx, "ppo"):
            train_ppo_baseline(ctx)

    def policy(self, ctx: Context) -> PolicyFactory:
        policy = load_ppo_policy(ctx.run, ctx.cfg, ctx.spec, ctx.device)
        return lambda n: policy

    def real_env_steps(self, ctx: Context) -> int:
        return agent_steps(ctx, NS)
