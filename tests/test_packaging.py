"""Installable as a package (issue 17): a built wheel -- not the editable checkout -- ships the
presets and works from any directory; ``worldmodels --version``."""

import subprocess
import sys
from pathlib import Path

from worldmodels import __version__

ROOT = Path(__file__).parent.parent


def test_a_built_wheel_ships_the_presets_and_trains_from_anywhere(tmp_path):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "cwd"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(wheels)]
    subprocess.run(build, check=True, capture_output=True)
    (wheel,) = wheels.glob("worldmodels-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = [sys.executable, "-m", "worldmodels"]

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*run, *args], cwd=elsewhere, env=env, capture_output=True, text=True)

    where = call("--version")
    assert where.stdout.strip() == f"worldmodels {__version__}"
    found = subprocess.run(
        [sys.executable, "-c", "import worldmodels; print(worldmodels.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert found.stdout.startswith(str(target)), found.stdout  # the wheel, not the checkout
    envs = call("envs")
    assert "CartPole-v1" in envs.stdout and "debug" in envs.stdout, envs.stderr
    done = call("train", "--env", "CartPole-v1", "--run-dir", "r", "--preset", "debug", "--quiet")
    assert done.returncode == 0 and "CartPole-v1 [classic]" in done.stdout, done.stderr[-1500:]
