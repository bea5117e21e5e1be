"""``worldmodels``: one command line for every stage. Parses (``parser.py``), turns the flags
into config and runs the pipeline (``commands.py``); every failure is one line on stderr with
exit status 2 (bad input) or 1 (training or acting failed)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from worldmodels.cli.commands import run
from worldmodels.cli.parser import build_parser
from worldmodels.errors import TrainingDivergedError, UserError
from worldmodels.parallel import WorkerError
from worldmodels.runs import disk_error

__all__ = ["Terminated", "build_parser", "main", "run"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the stage in progress stops at once, its last
    checkpoint stays, the run directory's lock is released."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    for level in (logging.INFO, logging.WARNING):
        logging.addLevelName(level, logging.getLevelName(level).lower())
    logging.basicConfig(level=logging.WARNING, format="worldmodels: %(levelname)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        logging.getLogger().setLevel(logging.INFO)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return run(args)
    except UserError as exc:
        print(f"worldmodels: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read or write the system refused, outside the atomic writers
        print(f"worldmodels: error: {disk_error(exc, verb='access')}", file=sys.stderr)
        return 2
    except (TrainingDivergedError, WorkerError, FloatingPointError) as exc:
        # training or acting failed (the worker's traceback, if any, is past the first line)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"worldmodels: error: {first}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"worldmodels: {what}; continue with the same command and --resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
