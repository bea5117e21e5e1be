"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (a flag, a file, a run directory): message names the problem and the fix."""


class CorruptEpisodeError(Exception):
    """An episode file that cannot be read back whole."""


class TrainingDivergedError(Exception):
    """A loss or action became NaN/inf; the last good checkpoint was kept."""
