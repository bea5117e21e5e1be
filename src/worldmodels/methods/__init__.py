"""One file per training method behind the protocol in ``base.py``; importing this package
fills the registry (in this order: the CLI lists them so)."""

from worldmodels.methods import a2c, classic, dream, mpc, ppo, wm_ppo  # noqa: F401
from worldmodels.methods.base import REGISTRY, Context, Method, get, help_text

__all__ = ["REGISTRY", "Context", "Method", "get", "help_text"]
