"""worldmodels: learn a model of any Gymnasium environment, then act well with it."""

__version__ = "0.1.0"
