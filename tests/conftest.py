import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    # the CMA-ES signing key lives here; keep tests off the user's real key
    monkeypatch.setenv("WORLDMODELS_HOME", str(tmp_path_factory.getbasetemp() / "wm_home"))
