"""``--method classic``: random rollouts -> V -> M -> C by CMA-ES in the real env (Ha &
Schmidhuber 2018, "World Models")."""

from __future__ import annotations

from typing import ClassVar

from worldmodels.agent import ControllerPolicy
from worldmodels.methods.base import (
    WORLD_STAGES,
    Context,
    MethodBase,
    PolicyFactory,
    checkpoints,
    register,
)
from worldmodels.methods.stages import STAGES, controller_params, world_model
from worldmodels.methods.stages import collected_and_controller_steps as real_env_steps


@register
class Classic(MethodBase):
    name: ClassVar[str] = "classic"
    summary: ClassVar[str] = "V -> M -> C by CMA-ES in the real env; the default"
    sections: ClassVar[tuple[str, ...]] = ("controller",)
    artifacts = checkpoints("controller")
    world_stages = WORLD_STAGES
    epochs_key = "controller.generations"

    def train(self, ctx: Context, skip: set[str]) -> None:
        for name, fn in STAGES.items():
            if name not in skip:
                fn(ctx)

    def policy(self, ctx: Context) -> PolicyFactory:
        world = world_model(ctx)
        shape, params = controller_params(ctx)
        return lambda n: ControllerPolicy(world, shape, params, repeat=n)

    def real_env_steps(self, ctx: Context) -> int:
        return real_env_steps(ctx)
