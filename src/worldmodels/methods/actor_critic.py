"""What the actor-critic methods (a2c, wm-ppo) share at the method level: their config
sections (``ac``, ``imagination``) and acting with the saved actor-critic on the V and M it was
trained with."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

from worldmodels.agent import ActorCriticPolicy
from worldmodels.errors import UserError
from worldmodels.methods.base import Context, MethodBase, PolicyFactory
from worldmodels.methods.stages import agent_steps, require_agent_resume, timed, world_model
from worldmodels.rl.actor_critic import ActorCritic
from worldmodels.training.actor_critic_config import ActorCriticConfig, ImaginationConfig
from worldmodels.training.agent_io import load_agent
from worldmodels.training.on_policy import OnPolicyAlgorithm, train_on_policy
from worldmodels.world_model import WorldModel


def trained_agent(ctx: Context, ns: str, method: str) -> tuple[WorldModel, ActorCritic]:
    """The world model and actor-critic of checkpoint ``ns/best``; V and M are the weights the
    actor-critic was saved with when it carries them."""
    if not ctx.run.has(f"{ns}/best"):
        raise UserError(
            f"{ctx.run.root} has no trained actor-critic (checkpoints/{ns}/best.pt); run "
            f"`worldmodels train --method {method} --run-dir {ctx.run.root}` first"
        )
    world = world_model(ctx)
    ac = load_agent(ctx.run, ctx.spec, ctx.device, f"{ns}/best")
    payload = ctx.run.load(f"{ns}/best")
    if "vision_state" in payload:
        world.vision.load_state_dict(payload["vision_state"])
        world.memory.load_state_dict(payload["memory_state"])
    return world, ac


def agent_policy(ctx: Context, ns: str, method: str) -> PolicyFactory:
    world, ac = trained_agent(ctx, ns, method)
    return lambda n: ActorCriticPolicy(world, ac)


class ActorCriticMethod(MethodBase):
    """Base of a2c and wm-ppo: ``agent`` is the checkpoint namespace."""

    name: ClassVar[str]
    agent: ClassVar[str]
    sections: ClassVar[tuple[str, ...]] = ("ac", "imagination")
    own_sections: ClassVar[Mapping[str, type]] = {
        "ac": ActorCriticConfig,
        "imagination": ImaginationConfig,
    }
    epochs_key = "ac.updates"

    def run_agent(self, ctx: Context, make: Callable[[WorldModel], OnPolicyAlgorithm]) -> None:
        """The actor-critic stage: ``make(world)`` is the update the loop runs."""
        require_agent_resume(ctx, self.agent)
        world = world_model(ctx)
        with timed(ctx, "agent"):
            train_on_policy(make(world), self.agent, ctx, world)

    def policy(self, ctx: Context) -> PolicyFactory:
        return agent_policy(ctx, self.agent, self.name)

    def real_env_steps(self, ctx: Context) -> int:
        return agent_steps(ctx, self.agent)
