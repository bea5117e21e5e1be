"""Settings this version no longer has. A stored config (a run directory's ``config.yaml``, a
benchmark record) names every setting of the version that made it, these included: one at
the value that left it off is dropped as it is read, and one at any other value refuses the
config, since no setting of this version does what it did."""

from __future__ import annotations

import json
from typing import Any

from worldmodels.errors import UserError

ANY = object()
"""The off value of a setting that acted only through the one listed above it: any value is
dropped (that one, on, refuses the config)."""

RETIRED: dict[str, Any] = {
    # the entropy bonus learned to hold the actor's entropy above a floor
    "dreamer.entropy_floor": 0.0,
    "dreamer.entropy_floor_steps": 0,
    "dreamer.entropy_lr": ANY,
    # ez-greedy: random actions in the real env held for zeta-drawn counts
    "dreamer.explore_eps": 0.0,
    "dreamer.explore_exponent": ANY,
    # end windows drawn half at terminals with a positive last reward
    "dreamer.end_balance": False,
    # prioritized replay by the steps' latest world-model loss
    "dreamer.prio_fraction": 0.0,
    "dreamer.prio_exponent": ANY,
}
"""Each retired setting and the value at which it was off."""


def drop_retired(data: dict[str, Any], made: str) -> dict[str, Any]:
    """A stored config (nested sections) without its retired settings; one at a value other
    than off is a ``UserError`` naming it (``made``: what the config made, e.g. a run)."""
    out = dict(data)
    for key, off in RETIRED.items():
        section, name = key.split(".", 1)
        node = out.get(section)
        if not isinstance(node, dict) or name not in node:
            continue
        if off is not ANY and node[name] != off:
            raise UserError(
                f"{made} was made with {key}={json.dumps(node[name])}, a setting this version "
                f"no longer has: this version cannot resume or evaluate it (use the version it "
                f"was made with)"
            )
        out[section] = {k: v for k, v in node.items() if k != name}
    return out
