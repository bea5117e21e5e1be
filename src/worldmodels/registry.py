"""Every training method, registered: importing this module imports each method's file, which
adds the method to the registry (``methods.base.REGISTRY``) and declares its config sections.
It sits above the methods (the pipeline, the CLI and the API import it), so neither the config
nor the methods package imports a method."""

from worldmodels.config import SECTIONS
from worldmodels.methods import a2c, classic, dream, dreamer, mpc, ppo, wm_ppo
from worldmodels.methods.base import REGISTRY

METHOD_MODULES = (classic, dream, a2c, wm_ppo, mpc, ppo, dreamer)
"""The method files."""

ORDER = ("classic", "dream", "a2c", "wm-ppo", "mpc", "ppo", "dreamer")
"""The order of the ``--method`` choices, of ``worldmodels envs`` and of the methods' sections
in config.yaml (a method not named here comes after these, by name)."""


def _arrange() -> None:
    """Put the registry, and the sections the methods declare, in ``ORDER`` whatever order the
    method files happened to be imported in."""
    rank = {name: i for i, name in enumerate(ORDER)}
    for name in sorted(REGISTRY, key=lambda n: (rank.get(n, len(rank)), n)):
        REGISTRY[name] = REGISTRY.pop(name)
    declared = [s for m in REGISTRY.values() for s in m.own_sections]
    last = len(declared)
    for name in sorted(SECTIONS, key=lambda s: declared.index(s) if s in declared else last):
        SECTIONS[name] = SECTIONS.pop(name)


_arrange()

__all__ = ["METHOD_MODULES", "ORDER", "REGISTRY"]
