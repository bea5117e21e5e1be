"""One file per training method behind the protocol in ``base.py``. Importing this package
imports no method: ``worldmodels.registry`` (above the methods) imports every method file, which
registers the method and declares its config sections; a new method is a new file here and a
line there."""

from worldmodels.methods.base import REGISTRY, Context, Method, get, help_text

__all__ = ["REGISTRY", "Context", "Method", "get", "help_text"]
