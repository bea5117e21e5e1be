"""One writer per run directory (issue 16): a second command on a run directory in use is
refused in one line naming the holder, before it writes anything; a holder killed with -9
leaves nothing to clean up."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap

from worldmodels.cli import main

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from worldmodels.runs import RunLock
    lock = RunLock(Path(sys.argv[1]))
    lock.acquire("worldmodels train --run-dir elsewhere")
    print("held", flush=True)
    time.sleep(120)
    """
)


def _digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".lock"))
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_a_second_writer_is_refused_and_a_killed_holder_needs_no_cleanup(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["collect", "--env", "CartPole-v1", "--run-dir", str(run), "--quiet"]
    argv += ["--set", "collect.episodes=2"]
    assert main(argv) == 0
    before = _digest(run)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert f"PID {holder.pid}" in err and "worldmodels train --run-dir elsewhere" in err
        assert _digest(run) == before  # refused before any write
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert main(argv) == 0  # the OS released the dead holder's lock
