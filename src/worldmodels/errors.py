"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""

import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input (a flag, a file, a run directory): message names the problem and the fix."""


class CorruptEpisodeError(Exception):
    """An episode file that cannot be read back whole."""


class TrainingDivergedError(Exception):
    """A loss or action became NaN/inf; the last good checkpoint was kept."""


def run_main(main: Callable[[], None]) -> None:
    """Run a script's ``main``: a :class:`UserError` is one line on stderr and exit code 2."""
    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
