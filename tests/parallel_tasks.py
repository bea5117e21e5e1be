"""Task functions for the executor tests (importable by spawned and Ray workers alike)."""

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Job:
    value: int
    marker: str = ""  # a file: its absence makes the first attempt misbehave
    mode: str = "ok"  # ok | raise | kill_once | hang_once | hang

    def describe(self) -> str:
        return f"job {self.value} (env TestEnv-v0, seed {self.value * 10})"


def run_job(job: Job) -> int:
    first = bool(job.marker) and not Path(job.marker).exists()
    if first:
        Path(job.marker).write_text("attempted")
    if job.mode == "raise":
        raise ValueError(f"bad value {job.value}")
    if job.mode == "kill_once" and first:
        os.kill(os.getpid(), signal.SIGKILL)
    if job.mode == "hang" or (job.mode == "hang_once" and first):
        time.sleep(60)
    return job.value * job.value
