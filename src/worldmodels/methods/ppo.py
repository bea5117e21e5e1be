"""``--method ppo``: the model-free baseline, Stable-Baselines3's PPO on the real env
(``training/ppo_baseline.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from worldmodels.config import Config
from worldmodels.envs import EnvSpec
from worldmodels.errors import UserError
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

    def check(self, cfg: Config, spec: EnvSpec) -> None:
        if cfg.section(PpoConfig).normalize_obs and spec.obs_kind == "pixels":
            raise UserError(
                f"ppo.normalize_obs normalises vector observations but {spec.env_id} has frames "
                f"{spec.obs_shape} (the CNN scales pixels itself); leave it off"
            )

    def train(self, ctx: Context, skip: set[str]) -> None:
        if "controller" in skip:
            return
        require_resume(ctx, NS)
        with timed(ctx, "ppo"):
            train_ppo_baseline(ctx)

    def policy(self, ctx: Context) -> PolicyFactory:
        # the best checkpoint's policy, seeing observations normalised with its statistics
        policy = load_ppo_policy(ctx.run, ctx.cfg, ctx.spec, ctx.device)
        return lambda n: policy

    def real_env_steps(self, ctx: Context) -> int:
        return agent_steps(ctx, NS)
