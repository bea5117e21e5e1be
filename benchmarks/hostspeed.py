"""How fast this host is at the moment a benchmark run starts, so wall times measured on different
days can be compared: these machines have run the same dreamer update ~1.9x slower on one day
than on another (3.41 against 6.50 gradient steps/s). Two numbers, each the median of 5 trials
on one math thread: the float32 matmul rate at the shape of a dreamer update's largest
recurrent matmul (the GRU's 512 x 128 x 384), and the time of a Python loop of 10^6 additions
(stepping an env and acting are interpreter time).

`suite.run_one` appends one entry to the run's ``host_speed.json`` each time it starts or
resumes a run (measured beside whatever else runs then: the other lanes); the run's record
(records.py) keeps the list, and the tables show it beside the wall time.

    .venv/bin/python benchmarks/hostspeed.py
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

FILE = "host_speed.json"
M, K, N = 512, 128, 384


def measure(trials: int = 5) -> dict[str, Any]:
    """{"date", "sgemm_gflops", "python_loop_ms"} now, on one math thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(M, K), torch.randn(K, N)
        for _ in range(10):  # warm-up
            a @ b
        rates = []
        for _ in range(trials):
            t0 = time.perf_counter()
            for _ in range(50):
                a @ b
            rates.append(2 * M * K * N * 50 / (time.perf_counter() - t0) / 1e9)
    finally:
        torch.set_num_threads(threads)
    loops = []
    for _ in range(trials):
        t0, total = time.perf_counter(), 0
        for i in range(1_000_000):
            total += i
        loops.append((time.perf_counter() - t0) * 1000)
    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "sgemm_gflops": round(statistics.median(rates), 1),
        "python_loop_ms": round(statistics.median(loops), 1),
    }


def stamp(run_dir: Path) -> dict[str, Any]:
    """Measure now and append the entry to ``run_dir``'s host_speed.json."""
    entry = measure()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / FILE
    entries = json.loads(path.read_text()) if path.exists() else []
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([*entries, entry], indent=1) + "\n")
    tmp.replace(path)
    return entry


def describe(run_dir: Path) -> str:
    """The host speed at the run's starts, for a table cell ("—" when never measured)."""
    path = run_dir / FILE
    if not path.exists():
        return "—"
    entries = json.loads(path.read_text())
    return " / ".join(
        f"{e['sgemm_gflops']:.0f} GFLOPS, {e['python_loop_ms']:.0f} ms" for e in entries
    )


if __name__ == "__main__":
    e = measure()
    print(f"{e['date']}: one thread, {M}x{K}x{N} float32 matmul {e['sgemm_gflops']} GFLOPS; "
          f"Python loop of 10^6 additions {e['python_loop_ms']} ms")  # fmt: skip
