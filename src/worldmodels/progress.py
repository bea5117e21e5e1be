"""Progress for terminals and for files. On a terminal: tqdm bars. When stderr is not a
terminal (CI, ``nohup``, ``make demo > log``): no carriage-return updates but one plain line
per bar when it ends and, for long stages, every ``WORLDMODELS_LOG_EVERY`` seconds (default
60) -- a log stays readable and small."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm


class LineProgress:
    """The part of tqdm's interface the toolkit uses, printing whole lines."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        **_: Any,
    ):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.postfix, self.closed = initial, "", False
        self.start = self.last = time.monotonic()
        self.n_last = initial
        self.every = float(os.environ.get("WORLDMODELS_LOG_EVERY", "60"))
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            self.total = len(iterable)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        for item in self.iterable:
            yield item
            self.update(1)

    def update(self, k: int = 1) -> None:
        self.n += k
        if time.monotonic() - self.last >= self.every:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        done = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        extra = f", {self.postfix}" if self.postfix else ""
        rate = (self.n - self.n_last) / max(now - self.last, 1e-9)  # since the last line
        left = None if self.total is None or self.closed or rate <= 0 else self.total - self.n
        eta = f", eta {left / rate:.0f}s" if left is not None and left > 0 else ""
        self.last, self.n_last = now, self.n
        elapsed = now - self.start
        print(f"{self.desc}: {done} {self.unit} ({elapsed:.0f}s{eta}{extra})", file=sys.stderr)
        sys.stderr.flush()


def progress_bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)`` on a terminal; :class:`LineProgress` otherwise."""
    if kwargs.get("disable") or sys.stderr.isatty():
        return tqdm(iterable, **kwargs)
    return LineProgress(iterable, **kwargs)
