"""SIGKILL a whole `worldmodels train` mid-controller, resume it, and get the same result as a
run that was never killed."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent
SETS = [
    "controller.generations=5",
    "controller.population=4",
    "controller.eval_episodes=2",
    "controller.target_return=1e9",
]


def _train(run_dir: Path, resume: bool = False) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "worldmodels",
        "train",
        "--env",
        "slow_env:SlowEnv",
        "--run-dir",
        str(run_dir),
        "--preset",
        "debug",
        "--quiet",
        "--no-eval",
    ]
    for item in SETS:
        cmd += ["--set", item]
    return cmd + (["--resume"] if resume else [])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run both kill tests must end bit-identical to."""
    ref = tmp_path_factory.mktemp("kill") / "ref"
    done = subprocess.run(_train(ref), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return ref


def test_train_killed_during_controller_resumes_to_the_same_result(reference, tmp_path):
    cut = tmp_path / "cut"
    kill = {**_env(), "WORLDMODELS_KILL_AFTER_SAVE": "controller/last:2"}  # after generation 2
    killed = subprocess.run(_train(cut), env=kill, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    last = cut / "checkpoints" / "controller" / "last.pt"
    gen = torch.load(last, weights_only=True)["progress"]["generation"]
    assert gen == 2
    refused = subprocess.run(_train(cut), env=_env(), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "pass --resume" in refused.stderr
    done = subprocess.run(
        _train(cut, resume=True), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    a = torch.load(reference / "checkpoints/controller/last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["progress"] == b["progress"] and b["progress"]["generation"] == 5
    assert torch.equal(a["best_params"], b["best_params"])
    assert torch.equal(a["model"]["state_dict"]["params"], b["model"]["state_dict"]["params"])


def test_sigterm_saves_says_one_line_and_resumes_to_the_same_result(reference, tmp_path):
    """SIGTERM is handled as Ctrl-C (issue 16): exit 143, one line naming --resume, the lock
    released, and the resumed run ends where an uninterrupted one does."""
    cut = tmp_path / "cut"
    term = {**_env(), "WORLDMODELS_KILL_AFTER_SAVE": "controller/last:2"}
    term["WORLDMODELS_KILL_SIGNAL"] = "TERM"
    stopped = subprocess.run(_train(cut), env=term, capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 143, stopped.stderr
    err = stopped.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "--resume" in err, err
    assert not (cut / ".lock.json").exists()
    done = subprocess.run(
        _train(cut, resume=True), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    a = torch.load(reference / "checkpoints/controller/last.pt", weights_only=True)
    b = torch.load(cut / "checkpoints/controller/last.pt", weights_only=True)
    assert a["progress"] == b["progress"]
    assert torch.equal(a["best_params"], b["best_params"])
