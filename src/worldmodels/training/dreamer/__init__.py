"""DreamerV3-class training (``--method dreamer``): a recurrent state-space world model learns
from a replay of every real step, and an actor-critic learns only in its imagination.

One job per module, as the reference DreamerV3 lays it out:

- ``config.py``: the ``dreamer:`` config section (``DreamerConfig``);
- ``agent.py``: the agent's networks, losses, optimisers and one ``update``; its policy;
- ``actor.py``: the actor and the return scale of its advantages;
- ``replay.py``: the replay's size, memory budget and rebuild from the episode store;
- ``loop.py``: the episode loop ``train_dreamer`` and its score / stop / hold rules;
- ``checkpoints.py``: the loop's counters, the checkpoint payloads, loading an agent back,
  its RSSM as the toolkit's world model and held-out episodes for ``diagnose``.
"""

from worldmodels.training.dreamer.actor import Actor, ReturnScale, frozen
from worldmodels.training.dreamer.agent import Dreamer, DreamerPolicy
from worldmodels.training.dreamer.checkpoints import (
    NS,
    DreamerProgress,
    dreamer_world,
    load_dreamer,
    record_held_out,
)
from worldmodels.training.dreamer.config import DreamerConfig
from worldmodels.training.dreamer.loop import train_dreamer
from worldmodels.training.dreamer.replay import (
    fill_random,
    make_replay,
    obs_dtype,
    replay_budget,
    replay_steps,
)

__all__ = [
    "NS",
    "Actor",
    "Dreamer",
    "DreamerConfig",
    "DreamerPolicy",
    "DreamerProgress",
    "ReturnScale",
    "dreamer_world",
    "fill_random",
    "frozen",
    "load_dreamer",
    "make_replay",
    "obs_dtype",
    "record_held_out",
    "replay_budget",
    "replay_steps",
    "train_dreamer",
]
