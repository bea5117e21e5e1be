"""One file per training method behind the protocol in ``base.py``. Importing this package
imports every module in it, which fills the registry: a new method is a new file here. The
CLI lists the methods in ``ORDER``, then the others by file name."""

import importlib
import pkgutil

from worldmodels.methods.base import REGISTRY, Context, Method, get, help_text

_HELPERS = {"base", "stages", "actor_critic"}
ORDER = ("classic", "dream", "a2c", "wm_ppo", "mpc", "ppo")
for _name in sorted(
    (m.name for m in pkgutil.iter_modules(__path__) if m.name not in _HELPERS),
    key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n),
):
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["REGISTRY", "Context", "Method", "get", "help_text"]
