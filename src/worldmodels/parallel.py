"""One small executor interface for work spread over processes (and, later, a cluster).

``Executor.map_unordered(fn, tasks)`` yields ``(task, result)`` as tasks finish. ``fn`` must
be a module-level function and tasks plain data (ids, seeds, config dicts): environments and
models are built inside the worker, never pickled across.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    workers: int

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Runs tasks in this process, one after another."""

    workers = 1

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        for task in tasks:
            yield task, fn(task)

    def close(self) -> None:
        pass


class LocalExecutor:
    """A pool of ``workers`` spawned processes; at most ``2 * workers`` tasks in flight, so a
    kill loses at most those."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        pending: dict[Future[Any], T] = {}
        it = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * self.workers:
                try:
                    task = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending[self._pool.submit(fn, task)] = task
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                task = pending.pop(fut)
                yield task, fut.result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def make_executor(kind: str, workers: int) -> Executor:
    if kind != "local":
        raise ValueError(f"unknown executor '{kind}'")
    return InlineExecutor() if workers <= 1 else LocalExecutor(workers)
