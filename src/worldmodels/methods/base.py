"""The method protocol and its registry.

A method is one file in this package: a class with a name, the config sections it reads (and
declares, its own: ``own_sections``), the checkpoints it owns, ``train(ctx, skip)``,
``policy(ctx)`` (the agent that evaluation runs) and ``real_env_steps(ctx)``, registered with
``@register``. ``worldmodels.registry`` imports every method file; the CLI's ``--method``
choices and help, ``worldmodels envs``, evaluation and the benchmark suite read the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from worldmodels.config import Config, declare_section
from worldmodels.data.rollout import Policy
from worldmodels.data.store import EpisodeStore
from worldmodels.errors import UserError
from worldmodels.methods.stages import split, world_model
from worldmodels.runs import Context
from worldmodels.world_model import WorldModel

STAGE_NAMES = ("collect", "vision", "memory", "controller")
WORLD_STAGES = STAGE_NAMES[:3]
"""The stages that collect data and train V and M, which most methods run first."""


PolicyFactory = Callable[[int], Policy]
"""``n -> policy`` acting in n real envs at once."""


class Method(Protocol):
    name: ClassVar[str]
    """The ``--method`` name."""
    summary: ClassVar[str]
    """One line for ``--help`` and ``worldmodels envs``."""
    sections: ClassVar[tuple[str, ...]]
    """The config sections it reads beyond env/collect/vision/memory."""
    own_sections: ClassVar[Mapping[str, type]]
    """Its own config sections, declared beside its code: name -> dataclass (fields declared
    with ``config.knob``), ``name.<field>`` in files and --set once it is registered. Shared
    sections (controller, dream, planner, ...) are the config tree's own."""
    artifacts: ClassVar[tuple[str, ...]]
    """The checkpoints it writes (``name/last``, ``name/best``) and owns alone."""
    epochs_key: ClassVar[str | None]
    """The config key ``--max-epoch`` (an alias of the original World Models scripts) sets for
    this method (None: not offered)."""
    agent: ClassVar[str | None]
    """The checkpoint namespace of its actor-critic (a planner's base policy and critic), if
    it trains one."""
    world_stages: ClassVar[tuple[str, ...]]
    """The stages (``collect``, ``vision``, ``memory``) whose outputs it trains on: skipping
    one (``--skip-vision``) needs that output on disk already."""
    dream_start: ClassVar[str | None]
    """Where the run's dream (``worldmodels/Dream-v0``) starts its episodes when the caller
    names none: ``initial`` or ``any`` stored state (None: the run's ``dream.start``)."""

    def train(self, ctx: Context, skip: set[str]) -> None:
        """Run the method's stages in order (a stage named in ``skip`` is skipped)."""

    def policy(self, ctx: Context) -> PolicyFactory:
        """The trained agent, acting in the real env."""

    def real_env_steps(self, ctx: Context) -> int:
        """Every real env step training took (collection, training, its evaluations)."""

    def world(self, ctx: Context) -> tuple[WorldModel, str]:
        """The trained world model as V + M, and the checkpoint keying its latents."""

    def held_out(self, ctx: Context, scratch: Path) -> tuple[EpisodeStore, list[int], bool]:
        """Episodes to diagnose the world model on (store, indices, cacheable)."""

    def dream_length(self, cfg: Config) -> int | None:
        """How long the run's dream episodes last when the caller names no horizon (None:
        the run's ``dream.horizon``)."""

    # Optional: ``check(self, cfg: Config, spec: EnvSpec) -> None`` -- the method's checks of
    # the config against the env (e.g. pixel settings on a vector env), raising ``UserError``
    # before any work starts.


class MethodBase:
    """The protocol's defaults: no ``--max-epoch`` key, no actor-critic agent, no V/M stages
    before the method's own; the world model is the run's V and M, diagnosed on the held-out
    split of its episodes."""

    epochs_key: ClassVar[str | None] = None
    agent: ClassVar[str | None] = None
    own_sections: ClassVar[Mapping[str, type]] = {}
    world_stages: ClassVar[tuple[str, ...]] = ()
    dream_start: ClassVar[str | None] = None

    def world(self, ctx: Context) -> tuple[WorldModel, str]:
        """The run's world model as V + M (``diagnose``, the dream env, the Python API) and
        the checkpoint whose digest keys its latent cache."""
        if not ctx.run.has("memory/best"):
            raise UserError(
                f"{ctx.run.root} has no trained M; run `worldmodels train-memory --run-dir "
                f"{ctx.run.root}` (or `worldmodels train`) first"
            )
        return world_model(ctx), "vision/best"

    def held_out(self, ctx: Context, scratch: Path) -> tuple[EpisodeStore, list[int], bool]:
        """Episodes the world model never trained on, for ``diagnose``: (their store, their
        indices, whether their latents may be cached in the run)."""
        train, val = split(ctx)
        if not val:
            raise UserError(
                f"the held-out split of {ctx.run.root} is empty (collect.val_fraction="
                f"{ctx.cfg.collect.val_fraction}, {len(train)} episodes); collect more "
                f"episodes or raise collect.val_fraction"
            )
        return EpisodeStore(ctx.run.episodes), val, True

    def dream_length(self, cfg: Config) -> int | None:
        return None


def checkpoints(ns: str) -> tuple[str, str]:
    """The checkpoints of namespace ``ns``: the latest (resume) and the best (evaluation)."""
    return f"{ns}/last", f"{ns}/best"


REGISTRY: dict[str, Method] = {}

CONFIG_ADAPTERS: list[Callable[[dict[str, Any], str], dict[str, Any]]] = []
"""Functions that translate a method's foreign config files (e.g. the World Model PPO
trainer's ``world_model:`` YAML) into this config's keys; ``--config`` files pass through
each."""


def register(cls: type) -> type:
    """Class decorator: adds one instance of a method class to the registry and declares its
    own config sections."""
    for name, section in getattr(cls, "own_sections", {}).items():
        declare_section(name, section)
    REGISTRY[cls.name] = cls()  # type: ignore[attr-defined]
    return cls


def get(name: str) -> Method:
    if name not in REGISTRY:
        raise UserError(f"unknown method '{name}'; available: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def help_text() -> str:
    return "; ".join(f"{m.name} ({m.summary})" for m in REGISTRY.values())
