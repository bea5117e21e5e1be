"""The run directory: config, checkpoints, counters, TensorBoard. Everything a stage writes goes
through here, so atomicity, resume and versioning live in one place.

Checkpoints are plain dicts of tensors and primitives saved with ``torch.save`` and loaded
with ``torch.load(weights_only=True)``: a checkpoint file can never execute code. Each holds
the model's registry name, constructor kwargs and state dict, the env's shape signature, the
resolved config, library versions and the stage's progress (optimiser state, RNG state,
counters).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import io
import json
import os
import platform
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import yaml

from worldmodels import __version__
from worldmodels.config import Config, apply_overrides, drop_retired, dump_yaml
from worldmodels.envs import EnvSpec
from worldmodels.errors import UserError

CHECKPOINT_FORMAT = 1


def versions() -> dict[str, str]:
    import cma
    import gymnasium

    return {
        "worldmodels": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "gymnasium": gymnasium.__version__,
        "cma": cma.__version__,
        "python": platform.python_version(),
        # which vector kernels torch picked on this CPU (AVX2, AVX512, ...): float rounding,
        # so results, differ between them at the same seed, config and thread count
        "cpu_kernels": str(torch.backends.cpu.get_cpu_capability()),
        # where the CPU multiplies bf16 in hardware, the dreamer's batched passes run in bf16
        "cpu_bf16": "amx" if cpu_bf16() else "none",
    }


def cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX): there a bf16 matmul
    of a dreamer head's shape runs ~5x faster than float32; elsewhere bf16 is emulated and
    slower than float32."""
    return bool(torch.cpu._is_amx_tile_supported())


class DiskError(UserError, OSError):
    """A write the disk refused (full, read-only, permission denied): one line naming the
    file and the fix; a ``UserError`` for the CLI, an ``OSError`` for code that catches one."""


DISK_FIXES = {
    errno.ENOSPC: "the disk is full: free space (df -h {folder}), then rerun with --resume",
    errno.EDQUOT: "the disk quota is used up: free space, then rerun with --resume",
    errno.EROFS: "the file system is read-only: use a --run-dir on a writable disk",
    errno.EACCES: "permission denied: make {folder} writable (chmod/chown) or use another "
    "--run-dir",
    errno.EPERM: "operation not permitted: make {folder} writable or use another --run-dir",
}


def disk_error(exc: OSError, path: Path | str | None = None, verb: str = "write") -> UserError:
    """The one-line error for an ``OSError`` while writing (``verb``) ``path`` (its own
    filename when None): the path, what the disk said, and the fix."""
    target = Path(path or exc.filename or "?")
    fix = DISK_FIXES.get(exc.errno or 0, "check the path and the disk, then rerun")
    what = exc.strerror or str(exc)
    return DiskError(f"cannot {verb} {target} ({what}): {fix.format(folder=target.parent)}")


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through ``write(fh)`` into a temp file, fsync it, rename it into place and fsync
    the folder, so a crash leaves the old file or the new one, never a part. On any failure
    the temp file is removed; a refused write (full disk, read-only, permission) is a
    :class:`DiskError` naming ``path``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, DiskError):
            raise disk_error(exc, path) from exc
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def remove_temp_files(root: Path) -> int:
    """Delete the temp files (``.NAME.tmpPID``) a killed writer left anywhere under ``root``;
    call it holding the run's lock, when no other writer can be mid-write. Returns how many."""
    stale = [p for p in root.rglob(".*.tmp*") if p.is_file()] if root.exists() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


_DIGESTS: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: Path) -> str:
    """The identity of a checkpoint's model: sha256 over its state dict (names, dtypes, shapes,
    values), not over the file -- ``torch.save`` writes a random serialization id, so a
    deterministic retrain gives a new file hash but the same weights, and what was trained on
    the old V or M stays valid. Memoised per (path, mtime, size)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        payload = load_checkpoint(path)
        state = payload["model" if "model" in payload else "world"]["state_dict"]
        for name in sorted(state):
            tensor = state[name].detach().cpu().contiguous()
            h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _secret() -> bytes:
    """A per-user key: signs the pickled CMA-ES state so only files this machine wrote load."""
    path = Path(os.environ.get("WORLDMODELS_HOME", Path.home() / ".cache" / "worldmodels"))
    key = path / "signing.key"
    if not key.exists():  # created 0600: never readable by others, not even for a moment
        key.parent.mkdir(parents=True, exist_ok=True)
        tmp = key.with_name(f".{key.name}.tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, key)
    return key.read_bytes()


def sign(data: bytes) -> str:
    return hmac.new(_secret(), data, hashlib.sha256).hexdigest()


def verify(data: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(data), signature)


def np_rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def restore_np_rng(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


class RunDir:
    """Paths and file operations of one run directory."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.config_path = self.root / "config.yaml"
        self.episodes = self.root / "data" / "episodes"
        self.latents = self.root / "data" / "latents"
        self.checkpoints = self.root / "checkpoints"
        self.tb = self.root / "tb"
        self.videos = self.root / "videos"
        self.plots = self.root / "plots"
        self.eval_path = self.root / "eval.json"
        self.spec_path = self.root / "env_spec.json"
        self.on_save: Callable[[], None] | None = None  # called after every checkpoint write

    def has_config(self) -> bool:
        return self.config_path.exists()

    def load_config(self) -> Config:
        try:
            data = yaml.safe_load(self.config_path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(
                f"cannot read {self.config_path} ({exc}); the run directory is "
                f"damaged: use a new --run-dir"
            ) from None
        cfg = Config()
        # a method's section read before its method is registered (library use) is kept as
        # it was stored, and typed when the method is (``Config.section``)
        apply_overrides(cfg, drop_retired(data, f"the run in {self.root}"), keep_unknown=True)
        return cfg

    def write_config(self, cfg: Config, spec: EnvSpec) -> None:
        atomic_write_bytes(self.config_path, dump_yaml(cfg).encode())
        atomic_write_json(self.spec_path, spec.to_dict())

    def ckpt_path(self, name: str) -> Path:
        return self.checkpoints / f"{name}.pt"

    def has(self, name: str) -> bool:
        return self.ckpt_path(name).exists()

    def save(self, name: str, payload: dict[str, Any]) -> Path:
        path = self.ckpt_path(name)
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "versions": versions(), **payload}, buffer)
        atomic_write_bytes(path, buffer.getbuffer().tobytes())
        if self.on_save is not None:
            self.on_save()
        _fault_injection(name)
        return path

    def set_aside(self, ns: str, why: str) -> Path | None:
        """Move checkpoint namespace ``ns`` to ``checkpoints/<ns>.<why>-<n>`` (nothing is
        deleted) so its stage starts afresh; returns where it went (None: nothing there)."""
        folder = self.checkpoints / ns
        if not folder.exists():
            return None
        n = 1
        while (target := folder.with_name(f"{ns}.{why}-{n}")).exists():
            n += 1
        folder.rename(target)
        return target

    def digest(self, name: str) -> str:
        """:func:`weights_sha256` of checkpoint ``name``: what later stages record as the V or
        M they were trained on."""
        return weights_sha256(self.ckpt_path(name))

    def made_from(self, recorded: str | None, name: str) -> bool:
        """Whether ``recorded`` (a later stage's ``vision_sha256`` / ``memory_sha256``) names
        checkpoint ``name``: its weights digest, or its file hash (runs written before
        weights digests)."""
        path = self.ckpt_path(name)
        return recorded is not None and recorded in (self.digest(name), file_sha256(path))

    def damaged(self, ns: str) -> list[Path]:
        """The checkpoints of namespace ``ns`` that cannot be loaded."""
        bad = []
        for path in sorted((self.checkpoints / ns).glob("*.pt")):
            try:
                load_checkpoint(path)
            except UserError:
                bad.append(path)
        return bad

    def load(self, name: str) -> dict[str, Any]:
        path = self.ckpt_path(name)
        if not path.exists():
            raise UserError(
                f"{path} does not exist; run the stage that writes it first "
                f"(see `worldmodels train --help`)"
            )
        return load_checkpoint(path)

    def writer(self):  # -> SummaryWriter (imported lazily: tensorboard is slow to import)
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.tb))

    def log_curve(self, real_env_steps: int, mean_return: float) -> None:
        """One point of the learning curve (real env steps so far, mean return of the
        policies acting then), appended to curve.jsonl unless that exact point is there
        already. A resumed run may repeat a step count; ``curve()`` keeps the last point for
        each. A line torn by a kill is ended first, so it cannot swallow this one."""
        point = (int(real_env_steps), float(mean_return))
        if point in self.curve():  # e.g. the collect stage of a re-run: already recorded
            return
        path = self.root / "curve.jsonl"
        torn = path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
        line = json.dumps({"steps": point[0], "mean_return": point[1]}) + "\n"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as fh:
                fh.write(("\n" if torn else "") + line)
        except OSError as exc:
            raise disk_error(exc, path) from exc

    def curve(self) -> list[tuple[int, float]]:
        """The learning curve sorted by steps (a torn last line, from a kill, is skipped)."""
        path = self.root / "curve.jsonl"
        points: dict[int, float] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    item = json.loads(line)
                    points[int(item["steps"])] = float(item["mean_return"])
                except (ValueError, KeyError, TypeError):
                    continue
        return sorted(points.items())

    def counters(self) -> dict[str, Any]:
        path = self.root / "counters.json"
        return json.loads(path.read_text()) if path.exists() else {}


RETRAIN_COMMANDS = {
    "vision": "train-vision",
    "memory": "train-memory",
    "world": "train-memory",
    "controller": "train-controller",
}
"""The command that retrains the stage owning a checkpoint namespace (others: ``train``)."""


def retrain_advice(path: Path) -> str:
    """Which one stage to retrain for a damaged ``<run>/checkpoints/<ns>/<name>.pt``."""
    ns, run = path.parent.name, path.parent.parent.parent
    command = RETRAIN_COMMANDS.get(ns, "train --resume")
    return (
        f"retrain that stage with `worldmodels {command} --run-dir {run}` (it sets the damaged "
        f"checkpoints aside and replaces them; nothing else needs retraining)"
    )


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, truncated, or not a weights-only file
        raise UserError(
            f"cannot load checkpoint {path} ({type(exc).__name__}): it is damaged or not a "
            f"worldmodels checkpoint; {retrain_advice(path)}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path} is not a worldmodels checkpoint (format {CHECKPOINT_FORMAT}); "
            f"{retrain_advice(path)}"
        )
    return payload


def model_payload(name: str, kwargs: dict[str, Any], module: torch.nn.Module) -> dict[str, Any]:
    return {"name": name, "kwargs": kwargs, "state_dict": module.state_dict()}


def check_spec(payload: dict[str, Any], spec: EnvSpec, path: str) -> None:
    """Refuse a checkpoint whose observation/action shapes differ from the env's."""
    stored = payload.get("spec")
    if stored != spec.shape_signature():
        raise UserError(
            f"checkpoint {path} was trained for {_describe(stored)} but env {spec.env_id} has "
            f"{_describe(spec.shape_signature())}; retrain it for this env or use a run "
            f"directory of that env"
        )


def _describe(sig: dict[str, Any] | None) -> str:
    if not sig:
        return "an unknown env"
    return (
        f"{sig['obs_kind']} obs {tuple(sig['obs_shape'])} and {sig['action_dim']} "
        f"{sig['action_kind']} actions"
    )


_SAVES: dict[str, int] = {}


def _fault_injection(name: str) -> None:
    """``WORLDMODELS_KILL_AFTER_SAVE=NAME:N`` kills this process with SIGKILL right after the
    N-th save of checkpoint NAME (``WORLDMODELS_KILL_SIGNAL=TERM``: SIGTERM instead):
    kill-and-resume tests land exactly where they mean to, whatever the machine's speed (no
    sleeping and polling)."""
    spec = os.environ.get("WORLDMODELS_KILL_AFTER_SAVE")
    if not spec:
        return
    target, _, count = spec.rpartition(":")
    if target != name:
        return
    _SAVES[name] = _SAVES.get(name, 0) + 1
    if _SAVES[name] == int(count):
        term = os.environ.get("WORLDMODELS_KILL_SIGNAL") == "TERM"
        os.kill(os.getpid(), signal.SIGTERM if term else signal.SIGKILL)


class RunLock:
    """One writer per run directory: an OS-level lock on ``<run>/.lock`` (``filelock``), held
    for a whole command and released by the OS when the process dies, so a killed run never
    needs cleaning up; ``.lock.json`` names the holder for the refusal message."""

    def __init__(self, root: Path):
        from filelock import FileLock

        self.root = root
        self._lock = FileLock(root / ".lock", timeout=0, is_singleton=True)
        self._info = root / ".lock.json"

    def acquire(self, command: str) -> None:
        from filelock import Timeout

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:  # a TimeoutError, so an OSError: caught first
            raise UserError(
                f"{self.root} is in use by another worldmodels command ({self._holder()}); "
                f"wait for it to finish (or stop it), then run this again"
            ) from None
        except OSError as exc:
            raise disk_error(exc, self.root / ".lock") from exc
        atomic_write_json(self._info, {"pid": os.getpid(), "command": command})

    def _holder(self) -> str:
        try:
            info = json.loads(self._info.read_text())
            return f"PID {info['pid']}: {info['command']}"
        except (OSError, ValueError, KeyError):
            return "holder unknown"

    def release(self) -> None:
        if self._lock.is_locked:
            self._info.unlink(missing_ok=True)
            self._lock.release()


@dataclass
class Context:
    """An open run: its directory, resolved config, env spec and device, and its TensorBoard
    writer (opened on first use). What every training loop is given."""

    run: RunDir
    cfg: Config
    spec: EnvSpec
    device: torch.device
    resume: bool = False
    progress: bool = True
    _writer: Any = field(default=None, repr=False)
    lock: RunLock | None = field(default=None, repr=False)
    """The run directory's writer lock, held until ``close()``."""

    @property
    def writer(self) -> Any:
        if self._writer is None:
            self._writer = self.run.writer()
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None
