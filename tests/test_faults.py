"""The fault matrix (issue 16): bad input, damaged files and disk faults each end in one line on
stderr (no traceback) with the exit status the README gives, and "nothing lost" is checked by
hashing the run directory. Read-only and full disks are real: a private mount namespace
(``unshare``) with a read-only bind mount or a size-limited tmpfs; permission denied is a run
directory written by another user (``setpriv`` to ``nobody`` when root). Probes that need a
facility the machine lacks are skipped, saying which.

Every probe appends its row to ``tests/artifacts/fault_matrix.md`` (the README's table)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from cli_runs import train_debug
from test_run_lock import HOLD

from worldmodels.cli import main
from worldmodels.runs import RunDir, _secret

WM = [sys.executable, "-m", "worldmodels"]
ARTIFACTS = Path(__file__).parent / "artifacts"
ROOT = os.geteuid() == 0


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (the lock's own files aside)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".lock"))
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _row(probe: str, rc: int, err: str, kept: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    message = err.strip().splitlines()[-1] if err.strip() else "(none)"
    with open(ARTIFACTS / "fault_matrix.md", "a") as fh:
        fh.write(f"| {probe} | {rc} | `{message.replace('|', '/')}` | {kept} |\n")


def _one_line(err: str) -> str:
    """The error line: exactly one ``worldmodels: error:`` line, no traceback."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("worldmodels: error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished ``--preset debug`` classic run on CartPole (about 8 s)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert train_debug(run, ["threads=1"]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` in a private mount namespace (root: ``unshare -m``; others: a user
    namespace too), where it may mount; skipped where the kernel refuses."""
    prefix = ["unshare", "-m", "--propagation", "private"] if ROOT else ["unshare", "-rm"]
    if shutil.which("unshare") is None or subprocess.run([*prefix, "true"]).returncode:
        pytest.skip("no private mount namespace here (unshare refused)")
    out = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True)
    assert "rc=99" not in out.stdout, out.stderr  # the script's mount failed
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    return out


def _full_disk(script: str) -> tuple[list[str], str]:
    """Run ``script`` (which fills a tmpfs) in a namespace: its stdout lines and the one error
    line, which must name the full disk."""
    out = _in_namespace(script)
    line = _one_line(out.stderr)
    assert "No space left on device" in line and "--resume" in line
    return out.stdout.splitlines(), line


def _q(args: list[str | Path]) -> str:
    return " ".join(f"'{a}'" for a in args)


# ---- input and files -------------------------------------------------------------------


def test_a_bad_value_is_refused_before_a_run_directory_exists(tmp_path, capsys):
    where = tmp_path / "new"
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(where), "--quiet"]
    assert main([*argv, "--set", "controller.generations=0"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "controller.generations=0 is out of range" in line and not where.exists()
    _row("`--set controller.generations=0` on a new run", 2, line, "no directory created")


def test_reading_commands_never_create_a_run(tmp_path, capsys):
    where = tmp_path / "typo"
    assert main(["evaluate", "--run-dir", str(where), "--env", "CartPole-v1", "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "is not a run directory" in line and not where.exists()
    _row("`evaluate` on a missing directory (with `--env`)", 2, line, "no directory created")
    assert main(["train", "--load-path", str(where / "pretrainedV.pt"), "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--load-path" in line and "not a run directory" in line and not where.exists()
    _row("mistyped `--load-path`", 2, line, "no directory created")


def test_skipping_a_stage_that_never_ran_is_refused_before_collecting(tmp_path, capsys):
    where = tmp_path / "new"
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(where), "--preset", "debug"]
    assert main([*argv, "--skip-vae", "--skip-mdnrnn", "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--skip-vision needs a trained V" in line and "vision/best.pt" in line
    assert not (where / "data").exists()  # nothing collected
    _row("`--skip-vae --skip-mdnrnn` on a new run", 2, line, "nothing collected")


def test_a_second_writer_is_refused(run, capsys):
    before = _digest(run)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        assert main(["train", "--run-dir", str(run), "--resume", "--quiet"]) == 2
    finally:
        holder.kill()
        holder.wait()
    line = _one_line(capsys.readouterr().err)
    assert "is in use by another worldmodels command" in line and f"PID {holder.pid}" in line
    assert _digest(run) == before
    _row("a second writer on a run in use", 2, line, "hashes unchanged")


def test_a_damaged_checkpoint_names_its_stage_which_alone_is_retrained(run, capsys, caplog):
    vision = run / "checkpoints/vision/best.pt"
    vision.write_bytes(vision.read_bytes()[:500])  # truncated
    others = {k: v for k, v in _digest(run / "checkpoints").items() if "vision" not in k}
    assert main(["evaluate", "--run-dir", str(run), "--episodes", "2", "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(vision) in line and "worldmodels train-vision" in line and "delete" not in line
    _row("truncated `vision/best.pt`, then `evaluate`", 2, line, "M, C hashes unchanged")
    assert main(["train-vision", "--run-dir", str(run), "--quiet"]) == 0
    assert "vision.damaged-1" in caplog.text  # the warning says where it went
    assert (run / "checkpoints/vision.damaged-1/best.pt").exists()
    RunDir(run).load("vision/best")  # replaced by a healthy one
    # a deterministic retrain gives V's weights back, so M and C stay valid, untouched
    after = {k: v for k, v in _digest(run / "checkpoints").items() if "vision" not in k}
    assert after == others
    assert main(["evaluate", "--run-dir", str(run), "--episodes", "2", "--quiet"]) == 0
    _row("... then `train-vision`", 0, "(V set aside as vision.damaged-1 and retrained)", "M, C")


def test_an_unsigned_cmaes_state_is_refused_in_one_line(run, capsys):
    path = run / "checkpoints/controller/last.pt"
    last = torch.load(path, weights_only=True)
    del last["es_signature"]
    last["progress"]["complete"] = False
    torch.save(last, path)
    before = _digest(run / "checkpoints") | _digest(run / "data")
    assert main(["train", "--run-dir", str(run), "--resume", "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "unsigned" in line and "not unpickled" in line
    assert _digest(run / "checkpoints") | _digest(run / "data") == before
    _row("`es_signature` removed from `controller/last.pt`", 2, line, "checkpoints, data unchanged")


def test_re_evaluating_adds_no_duplicate_curve_points(run, capsys):
    curve = (run / "curve.jsonl").read_bytes()
    for _ in range(2):
        assert main(["evaluate", "--run-dir", str(run), "--episodes", "2", "--quiet"]) == 0
    assert (run / "curve.jsonl").read_bytes() == curve


def test_the_signing_key_is_created_readable_by_its_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLDMODELS_HOME", str(tmp_path / "home"))
    assert len(_secret()) == 32
    mode = stat.S_IMODE((tmp_path / "home/signing.key").stat().st_mode)
    assert mode == 0o600, oct(mode)


# ---- disks -------------------------------------------------------------------------------


def test_a_read_only_run_prints_its_evaluation_and_loses_nothing(run):
    before = _digest(run)
    evaluate = [*WM, "evaluate", "--run-dir", run, "--episodes", "2", "--quiet"]
    train = [*WM, "train", "--run-dir", run, "--resume", "--quiet"]
    diagnose = [*WM, "diagnose", "--run-dir", run, "--no-write", "--horizon", "3", "--quiet"]
    out = _in_namespace(
        f"mount --bind '{run}' '{run}' && mount -o remount,bind,ro '{run}' || exit 99\n"
        f"{_q(evaluate)}; echo rc=$?\n{_q(train)} 2>&1; echo rc=$?\n"
        f"{_q(diagnose)} > /dev/null; echo rc=$?"
    )
    lines = out.stdout.splitlines()
    assert [x for x in lines if x.startswith("rc=")] == ["rc=2", "rc=2", "rc=0"], lines
    assert lines[0].startswith("CartPole-v1 [classic]:")  # the score is shown ...
    line = _one_line(out.stderr)  # ... then one line: it could not be saved
    assert "eval.json" in line and "Read-only file system" in line
    refused = _one_line(out.stdout)  # train: refused before any work
    assert ".lock" in refused and "Read-only file system" in refused
    assert _digest(run) == before
    _row("read-only run directory: `evaluate`", 2, line, "score printed; hashes unchanged")
    _row("read-only run directory: `train --resume`", 2, refused, "hashes unchanged")
    _row("read-only run directory: `diagnose --no-write`", 0, "(errors printed)", "unchanged")


def test_permission_denied_is_one_line_and_loses_nothing(trained, tmp_path):
    home = Path(tempfile.mkdtemp(prefix="wm-faults-"))  # pytest's own tmp is 0700 (root's)
    home.chmod(0o755)
    run = home / "run"
    shutil.copytree(trained, run)
    try:
        _permission_probes(run, tmp_path)
    finally:
        shutil.rmtree(home)


def _permission_probes(run: Path, tmp_path: Path) -> None:
    before = _digest(run)
    evaluate = [*WM, "evaluate", "--run-dir", str(run), "--episodes", "2", "--quiet"]
    train = [*WM, "train", "--run-dir", str(run), "--resume", "--quiet"]
    env = {**os.environ, "HOME": str(tmp_path), "WORLDMODELS_HOME": str(tmp_path / "wm")}
    env["MPLCONFIGDIR"] = str(tmp_path / "mpl")
    if ROOT:  # root ignores permissions: act as nobody on a root-owned run directory
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: cannot act as another user")
        tmp_path.chmod(0o777)
        as_other = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run([*as_other, sys.executable, "-c", "import worldmodels"], env=env)
        if probe.returncode:
            pytest.skip("user nobody cannot import worldmodels from this checkout")
    else:
        as_other = []
        for p in [run, *run.rglob("*")]:
            if p.is_dir():
                p.chmod(0o555)
    try:
        ev = subprocess.run([*as_other, *evaluate], env=env, capture_output=True, text=True)
        tr = subprocess.run([*as_other, *train], env=env, capture_output=True, text=True)
    finally:
        for p in [run, *run.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
    assert ev.returncode == 2 and "CartPole-v1 [classic]:" in ev.stdout, ev.stderr
    line = _one_line(ev.stderr)
    assert "eval.json" in line and "Permission denied" in line
    assert tr.returncode == 2 and "Permission denied" in _one_line(tr.stderr)
    assert _digest(run) == before
    _row("run directory of another user: `evaluate`", 2, line, "score printed; unchanged")
    _row("run directory of another user: `train --resume`", 2, _one_line(tr.stderr), "unchanged")


def test_a_full_disk_during_collection_loses_no_episode_and_resume_completes(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    where = disk / "run"
    collect = [*WM, "collect", "--env", "CartPole-v1", "--run-dir", where, "--quiet"]
    collect += ["--episodes", "400"]
    script = tmp_path / "check.py"  # every stored episode reads back whole
    script.write_text(
        "import sys\nfrom worldmodels.data.store import EpisodeStore\n"
        "s = EpisodeStore(sys.argv[1])\nfor i in s.indices():\n    s.read(i)\n"
        "print('episodes', len(s.indices()))\n"
    )
    check = [sys.executable, script, where / "data/episodes"]
    lines, line = _full_disk(
        f"mount -t tmpfs -o size=600k tmpfs '{disk}' || exit 99\n"
        f"{_q(collect)}; echo rc=$?\n"
        f"find '{disk}' -name '*.tmp*' | wc -l | sed 's/^/temps /'\n{_q(check)}\n"
        f"mount -o remount,size=16m '{disk}'\n{_q(collect)} --resume; echo rc=$?\n{_q(check)}"
    )
    assert lines[0] == "rc=2" and lines[1] == "temps 0", lines
    kept = int(lines[2].split()[1])
    assert 0 < kept < 400  # every episode written before the fault reads back whole
    assert lines[-2] == "rc=0" and lines[-1] == "episodes 400", lines
    _row("full disk during `collect`", 2, line, f"{kept} episodes intact, no temp files")
    _row("... then free space and `collect --resume`", 0, "(400 episodes)", "all intact")


def test_a_full_disk_during_training_keeps_the_checkpoints_and_resume_finishes(trained, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    where = disk / "run"
    train = [*WM, "train", "--run-dir", where, "--resume", "--quiet", "--no-eval"]
    lines, line = _full_disk(
        f"mount -t tmpfs -o size=8m tmpfs '{disk}' || exit 99\n"
        f"cp -r '{trained}' '{where}' && rm -rf '{where}/checkpoints/memory' "
        f"'{where}/checkpoints/controller' '{where}/data/latents'\n"
        f"head -c $(( $(df --output=avail -B1 '{disk}' | tail -1) - 8192 )) /dev/zero "
        f"> '{disk}/filler' 2>/dev/null\n"
        f"{_q(train)}; echo rc=$?\nfind '{disk}' -name '*.tmp*' | wc -l | sed 's/^/temps /'\n"
        f"rm '{disk}/filler'\n{_q(train)}; echo rc=$?"
    )
    assert lines[:2] == ["rc=2", "temps 0"] and lines[-1] == "rc=0", lines
    _row("full disk while training M", 2, line, "V kept, no temp files")
    _row("... then free space and `train --resume`", 0, "(finishes)", "V kept")
