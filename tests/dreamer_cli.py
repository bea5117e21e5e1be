"""Shared by the dreamer tests: the debug CartPole command line, and a training run in a
fresh process (for runs that are killed, or compared bit for bit)."""

import subprocess
import sys

DEBUG = ["--env", "CartPole-v1", "--method", "dreamer", "--preset", "debug", "--quiet"]
"""``worldmodels train`` arguments of a debug-sized dreamer run on CartPole-v1."""


def train_cmd(run_dir, *extra):
    """``worldmodels train --run-dir run_dir ...`` as a command line."""
    return [sys.executable, "-m", "worldmodels", "train", "--run-dir", str(run_dir), *extra]


def run_cmd(cmd, env):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
