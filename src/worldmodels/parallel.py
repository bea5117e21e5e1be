"""One small executor interface for work spread over processes or a Ray cluster.

``Executor.map_unordered(fn, tasks)`` yields ``(task, result)`` as tasks finish. ``fn`` must be
a module-level function and tasks plain data (indices, seeds, config dicts, parameter arrays):
environments and models are built inside the worker, never pickled across. Every task has
``describe()`` (env id, seed, candidate) so a failure names what failed.

Failure policy, the same for every backend:

- a task whose function raises stops the run with :class:`WorkerError` naming the task; such
  errors are deterministic (a bug, a bad env), so retrying would only repeat them;
- a worker that dies (killed, out of memory, segfault) or a task that runs past
  ``task_timeout`` seconds is retried up to ``max_retries`` times on a fresh worker, then the
  run stops with :class:`WorkerError`. The run never waits forever.

At most one task per worker is in flight, so a crash loses at most ``workers`` tasks.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol, TypeVar

from worldmodels.errors import TrainingDivergedError, UserError


class Task(Protocol):
    def describe(self) -> str: ...


T = TypeVar("T", bound=Task)
R = TypeVar("R")


class WorkerError(Exception):
    """A task failed in a worker (raised, or died / hung more than ``max_retries`` times)."""


class Executor(Protocol):
    workers: int

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class FailurePolicy:
    task_timeout: float = 600.0
    max_retries: int = 2


class InlineExecutor:
    """Runs tasks in this process, one after another (``workers = 1``)."""

    workers = 1

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        for task in tasks:
            try:
                result = fn(task)
            except (UserError, TrainingDivergedError, KeyboardInterrupt):
                raise  # already say what happened and what to do
            except Exception as exc:
                raise WorkerError(f"{task.describe()} failed: {type(exc).__name__}: {exc}") from exc
            yield task, result

    def close(self) -> None:
        pass


def _one_thread() -> None:
    """One math thread per worker: N workers x the default N threads oversubscribe the cores
    (measured: 2 workers with 2 torch threads each ran a CMA-ES generation 5x slower than one
    process). Ray does the same for its workers."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    torch = sys.modules.get("torch")  # already imported if the parent's main module did
    if torch is not None:
        torch.set_num_threads(1)


def _worker_loop(conn: Connection) -> None:
    """Body of a local worker process: run (fn, task) pairs until told to stop."""
    _one_thread()
    while True:
        try:
            message = conn.recv()  # unpickling may import torch for the first time
        except EOFError:
            return
        if message is None:
            return
        _one_thread()
        fn, task = message
        try:
            conn.send((True, fn(task)))
        except Exception as exc:  # reported to the parent, which names the task
            conn.send((False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))


class _Slot:
    """One local worker process and the task it is running."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_loop, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.task: Any = None
        self.attempt = 0
        self.started = 0.0

    def submit(self, fn: Callable[..., Any], task: Any, attempt: int) -> None:
        self.task, self.attempt, self.started = task, attempt, time.monotonic()
        self.conn.send((fn, task))

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class LocalExecutor:
    """``workers`` spawned processes on this machine, each running one task at a time."""

    def __init__(self, workers: int, policy: FailurePolicy | None = None):
        self.workers = workers
        self.policy = policy or FailurePolicy()
        self._ctx = mp.get_context("spawn")
        self._slots = [_Slot(self._ctx) for _ in range(workers)]

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        queue: deque[tuple[T, int]] = deque((t, 0) for t in tasks)
        while queue or any(s.task is not None for s in self._slots):
            for slot in self._slots:
                if slot.task is None and queue:
                    task, attempt = queue.popleft()
                    slot.submit(fn, task, attempt)
            busy = [s for s in self._slots if s.task is not None]
            now = time.monotonic()
            wait_for = max(0.05, min(s.started + self.policy.task_timeout - now for s in busy))
            ready = wait([h for s in busy for h in (s.conn, s.process.sentinel)], timeout=wait_for)
            for i, slot in enumerate(self._slots):
                if slot.task is None:
                    continue
                task, attempt = slot.task, slot.attempt
                if slot.conn in ready:
                    try:
                        ok, payload = slot.conn.recv()
                    except (EOFError, OSError):
                        ok, payload = None, None
                    if ok is True:
                        slot.task = None
                        yield task, payload
                        continue
                    if ok is False:
                        raise WorkerError(f"{task.describe()} failed in a worker: {payload}")
                if slot.conn in ready or slot.process.sentinel in ready:
                    reason = f"the worker died (exit code {slot.process.exitcode})"
                elif time.monotonic() - slot.started > self.policy.task_timeout:
                    reason = f"no result after {self.policy.task_timeout:g}s"
                else:
                    continue
                slot.kill()
                self._slots[i] = _Slot(self._ctx)
                if attempt >= self.policy.max_retries:
                    raise WorkerError(
                        f"{task.describe()}: {reason}, {attempt + 1} attempts; "
                        f"giving up (raise parallel.max_retries or "
                        f"parallel.task_timeout)"
                    )
                queue.appendleft((task, attempt + 1))

    def close(self) -> None:
        for slot in self._slots:
            if slot.process.is_alive():
                with contextlib.suppress(OSError):
                    slot.conn.send(None)
        for slot in self._slots:
            slot.process.join(timeout=2)
            if slot.process.is_alive():
                slot.process.kill()
        self._slots = []


def _call(fn: Callable[[Any], Any], task: Any) -> Any:
    return fn(task)


def _check_reachable(address: str) -> None:
    """Fail fast (3 s) on an address nothing listens on, instead of Ray's long retries."""
    host, _, port = address.rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
    except OSError as exc:
        raise UserError(
            f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); "
            f"start one with `ray start --head`, pass --ray-address auto for the "
            f"local cluster, or leave --ray-address out to start a private one"
        ) from None


class RayExecutor:
    """Tasks as Ray remote calls: an existing cluster (``address``) or a local one."""

    def __init__(
        self, workers: int, address: str | None = None, policy: FailurePolicy | None = None
    ):
        try:
            import ray
        except ImportError:
            raise UserError(
                "--executor ray needs Ray, which is not installed: pip install 'worldmodels[ray]'"
            ) from None
        self.ray = ray
        self.workers = workers
        self.policy = policy or FailurePolicy()
        self._owns_cluster = False
        if not ray.is_initialized():
            if address:
                _check_reachable(address)
            try:
                ray.init(
                    address=address or None,
                    num_cpus=None if address else workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(
                    f"cannot connect to Ray at {address or 'a new local cluster'}"
                    f" ({exc}); check --ray-address"
                ) from None
            self._owns_cluster = True
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_call)

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        ray = self.ray
        queue: deque[tuple[T, int]] = deque((t, 0) for t in tasks)
        inflight: dict[Any, tuple[T, int, float]] = {}
        while queue or inflight:
            while queue and len(inflight) < self.workers:
                task, attempt = queue.popleft()
                inflight[self._remote.remote(fn, task)] = (task, attempt, time.monotonic())
            now = time.monotonic()
            wait_for = max(
                0.05, min(s + self.policy.task_timeout - now for _, _, s in inflight.values())
            )
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=wait_for)
            for ref in ready:
                task, attempt, _ = inflight.pop(ref)
                try:
                    yield task, ray.get(ref)
                    continue
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if exc.cause is not None else exc
                    raise WorkerError(
                        f"{task.describe()} failed in a Ray worker: {type(cause).__name__}: {cause}"
                    ) from None
                except (
                    ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError,
                    ray.exceptions.NodeDiedError,
                ) as exc:
                    reason = f"the Ray worker died ({type(exc).__name__})"
                self._retry(queue, task, attempt, reason)
            for ref, (task, attempt, started) in list(inflight.items()):
                if time.monotonic() - started > self.policy.task_timeout:
                    ray.cancel(ref, force=True)
                    del inflight[ref]
                    self._retry(
                        queue, task, attempt, f"no result after {self.policy.task_timeout:g}s"
                    )

    def _retry(self, queue: deque[Any], task: Any, attempt: int, reason: str) -> None:
        if attempt >= self.policy.max_retries:
            raise WorkerError(
                f"{task.describe()}: {reason}, {attempt + 1} attempts; giving up "
                f"(raise parallel.max_retries or parallel.task_timeout)"
            )
        queue.appendleft((task, attempt + 1))

    def close(self) -> None:
        if self._owns_cluster and self.ray.is_initialized():
            self.ray.shutdown()


def preflight(kind: str, address: str | None) -> None:
    """Checks that need no cluster: Ray importable, the address answering. Run before a run
    directory is written, so a bad flag leaves nothing behind."""
    if kind != "ray":
        return
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UserError(
            "--executor ray needs Ray, which is not installed: pip install 'worldmodels[ray]'"
        )
    if address == "auto":
        found = _auto_address()
        if not found:
            raise UserError(
                "--ray-address auto found no running Ray cluster; start one with "
                "`ray start --head`, or leave --ray-address out to start a private "
                "one"
            )
        _check_reachable(found)
    elif address:
        _check_reachable(address)


def _auto_address() -> str | None:
    """Where ``ray.init(address="auto")`` would connect: $RAY_ADDRESS, else the file that
    `ray start` writes."""
    import tempfile
    from pathlib import Path

    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    return current.read_text().strip() or None if current.exists() else None


def make_executor(
    kind: str, workers: int, address: str | None = None, policy: FailurePolicy | None = None
) -> Executor:
    """``local`` (inline for one worker, processes for more) or ``ray``."""
    if kind == "ray":
        return RayExecutor(workers, address, policy)
    if kind != "local":
        raise UserError(f"unknown executor '{kind}'; use local or ray")
    return InlineExecutor() if workers <= 1 else LocalExecutor(workers, policy)
