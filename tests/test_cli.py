"""The command line end to end, and every bad input: one line, exit 2, nothing on disk touched."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from worldmodels.cli import main


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def _fails_cleanly(capsys, argv, needle, touched: Path):
    before = _snapshot(touched)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("worldmodels: error:") and needle in err, err
    assert _snapshot(touched) == before


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "cartpole"
    argv = f"train --env CartPole-v1 --run-dir {run_dir} --preset debug --quiet"
    assert main(argv.split()) == 0
    return run_dir


def test_debug_pipeline_end_to_end_on_cartpole(cartpole_run, capsys):
    for name in (
        "config.yaml",
        "env_spec.json",
        "eval.json",
        "checkpoints/vision/best.pt",
        "checkpoints/memory/best.pt",
        "checkpoints/controller/best.pt",
    ):
        assert (cartpole_run / name).exists(), name
    result = json.loads((cartpole_run / "eval.json").read_text())
    assert set(result) == {
        "env",
        "method",
        "episodes",
        "mean_return",
        "std_return",
        "returns",
        "seeds",
        "real_env_steps",
        "wall_seconds",
        "threads",
        "versions",
    }
    import torch

    assert result["versions"]["torch"] == str(torch.__version__)
    assert result["env"] == "CartPole-v1" and result["method"] == "classic"
    assert result["episodes"] == 3 and result["real_env_steps"] > 0
    assert len(result["returns"]) == 3
    assert np.mean(result["returns"]) == pytest.approx(result["mean_return"])
    assert np.std(result["returns"]) == pytest.approx(result["std_return"])
    assert list((cartpole_run / "tb").glob("events.out.tfevents.*"))
    # the learning curve: the random collection's point, then one per CMA-ES generation, the
    # last one at the real steps of the whole run (evaluation of the mean / best candidate)
    from worldmodels.data.store import EpisodeStore
    from worldmodels.runs import RunDir

    curve = RunDir(cartpole_run).curve()
    store = EpisodeStore(cartpole_run / "data" / "episodes").summary()
    assert curve[0] == (store["env_steps"], pytest.approx(store["mean_return"]))
    assert len(curve) == 1 + 2 and curve[-1][0] == result["real_env_steps"]
    # re-running train skips every complete stage and changes no checkpoint
    before = _snapshot(cartpole_run / "checkpoints")
    assert main(["train", "--run-dir", str(cartpole_run), "--quiet", "--no-eval"]) == 0
    assert _snapshot(cartpole_run / "checkpoints") == before
    # evaluate prints mean ± std and writes eval.json and a video
    assert (
        main(
            [
                "evaluate",
                "--run-dir",
                str(cartpole_run),
                "--episodes",
                "4",
                "--quiet",
                "--video",
                str(cartpole_run / "videos" / "ep.gif"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "± " in out and "over 4 episodes" in out
    assert (cartpole_run / "videos" / "ep.gif").stat().st_size > 1000


def test_debug_pipeline_end_to_end_on_pixels(tmp_path):
    run_dir = tmp_path / "car"
    assert (
        main(
            [
                "train",
                "--env",
                "CarRacing-v3",
                "--run-dir",
                str(run_dir),
                "--preset",
                "debug",
                "--quiet",
                "--set",
                "collect.episodes=3",
                "--set",
                "env.max_episode_steps=25",
                "--set",
                "collect.val_fraction=0.5",
            ]
        )
        == 0
    )
    spec = json.loads((run_dir / "env_spec.json").read_text())
    assert spec["obs_kind"] == "pixels" and spec["obs_shape"] == [64, 64, 3]
    assert json.loads((run_dir / "eval.json").read_text())["real_env_steps"] > 0
    # diagnose on pixels: errors in [0, 1] pixel space and a truth / prediction / error gif
    assert main(["diagnose", "--run-dir", str(run_dir), "--horizon", "3", "--quiet"]) == 0
    result = json.loads((run_dir / "diagnostics.json").read_text())
    assert all(0.0 <= v <= 1.0 for v in result["obs_mse"]["model"])
    import imageio.v2 as imageio

    frames = imageio.mimread(run_dir / "videos" / "diagnose.gif")
    assert len(frames) == 4 and frames[0].shape[:2] == (3 * 64, 64)


@pytest.mark.parametrize(
    "command,env,needle",
    [
        ("train", "NoSuchEnv-v9", "NoSuchEnv-v9"),
        ("collect", "no_such_pkg.envs:Thing", "cannot import module 'no_such_pkg.envs'"),
    ],
)
def test_unusable_env_is_refused_before_a_run_dir_exists(tmp_path, capsys, command, env, needle):
    argv = [command, "--env", env, "--run-dir", str(tmp_path / "r")]
    _fails_cleanly(capsys, argv, needle, tmp_path)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "item,needle",
    [
        ("vision.latnt_dim=3", "unknown config key 'vision.latnt_dim'"),
        ("memory.hidden_dim=big", "expects an integer"),
        ("memory.heads=after", "memory.heads must be hidden or next"),
    ],
)
def test_bad_set(tmp_path, capsys, item, needle):
    _fails_cleanly(
        capsys,
        ["train", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "r"), "--set", item],
        needle,
        tmp_path,
    )
    assert not (tmp_path / "r").exists()


def test_run_dir_of_another_env(cartpole_run, capsys):
    _fails_cleanly(
        capsys,
        ["train", "--env", "LunarLander-v3", "--run-dir", str(cartpole_run)],
        "was written for env CartPole-v1",
        cartpole_run,
    )


def test_incompatible_config_on_existing_run(cartpole_run, capsys):
    _fails_cleanly(
        capsys,
        ["train", "--run-dir", str(cartpole_run), "--resume", "--set", "vision.latent_dim=5"],
        "different vision.latent_dim",
        cartpole_run,
    )


def test_checkpoint_with_other_shapes(cartpole_run, tmp_path, capsys):
    lunar = tmp_path / "lunar"
    assert (
        main(
            [
                "train-vision",
                "--env",
                "LunarLander-v3",
                "--run-dir",
                str(lunar),
                "--preset",
                "debug",
                "--quiet",
                "--set",
                "collect.episodes=2",
            ]
        )
        == 2
    )  # no episodes yet
    capsys.readouterr()
    assert main(["collect", "--run-dir", str(lunar), "--quiet"]) == 0
    assert main(["train-vision", "--run-dir", str(lunar), "--quiet"]) == 0
    mixed = tmp_path / "mixed"
    shutil.copytree(cartpole_run, mixed)
    shutil.copy(lunar / "checkpoints/vision/best.pt", mixed / "checkpoints/vision/best.pt")
    capsys.readouterr()
    _fails_cleanly(
        capsys, ["evaluate", "--run-dir", str(mixed)], "was trained for vector obs (8,)", mixed
    )


def test_bad_video_suffix_and_bad_yaml(tmp_path, capsys, cartpole_run):
    _fails_cleanly(
        capsys,
        ["evaluate", "--run-dir", str(cartpole_run), "--video", "x.avi"],
        "must end in .mp4 or .gif",
        cartpole_run,
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("vision: [unclosed\n")
    _fails_cleanly(
        capsys,
        ["train", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "r"), "--config", str(bad)],
        "not valid YAML",
        tmp_path,
    )


def test_interrupted_stage_needs_resume(cartpole_run, tmp_path, capsys):
    import torch

    run = tmp_path / "cut"
    shutil.copytree(cartpole_run, run)
    last = torch.load(run / "checkpoints/vision/last.pt", weights_only=True)
    last["progress"]["complete"] = False
    last["progress"]["epoch"] = 1
    torch.save(last, run / "checkpoints/vision/last.pt")
    _fails_cleanly(capsys, ["train-vision", "--run-dir", str(run)], "pass --resume", run)
    assert main(["train-vision", "--run-dir", str(run), "--resume", "--quiet"]) == 0


def test_envs_lists_presets(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for env_id in ("CartPole-v1", "LunarLander-v3", "CarRacing-v3", "ALE/Pong-v5", "debug"):
        assert env_id in out


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--env",
        "--run-dir",
        "--seed",
        "--config",
        "--set",
        "--resume",
        "--skip-vae",
        "--skip-mdnrnn",
        "--method",
    ):
        assert flag in out


def test_switching_method_on_a_run_applies_its_presets_or_refuses(tmp_path, capsys):
    """Regression: ``train --method mpc`` on a finished classic run once planned zero
    times and reported complete (mpc's presets were not applied)."""
    run = str(tmp_path / "acro")
    base = ["train", "--env", "Acrobot-v1", "--run-dir", run, "--preset", "debug", "--quiet"]
    assert main([*base, "--no-eval"]) == 0
    capsys.readouterr()
    again = ["train", "--run-dir", run, "--method", "mpc", "--quiet"]
    assert main([*again, "--set", "mpc.total_steps=100"]) == 2
    assert "leaves no step to plan" in capsys.readouterr().err
    cart = str(tmp_path / "cart")
    first = ["train", "--env", "CartPole-v1", "--run-dir", cart, "--preset", "debug", "--quiet"]
    assert main([*first, "--no-eval"]) == 0
    capsys.readouterr()
    assert main(["train", "--run-dir", cart, "--method", "mpc", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "vision.kind" in err and "--method mpc brings its preset for CartPole-v1" in err


def test_math_threads_are_recorded_in_the_config_and_eval_json(tmp_path, monkeypatch):
    """``threads=1`` is set and recorded; unset, a new run takes OMP_NUM_THREADS where the user
    set it, else one thread."""
    import json

    import torch
    import yaml

    before = torch.get_num_threads()
    run = tmp_path / "t"
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run), "--preset", "debug"]
    try:
        assert main([*argv, "--quiet", "--set", "threads=1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert yaml.safe_load((run / "config.yaml").read_text())["threads"] == 1
    assert json.loads((run / "eval.json").read_text())["threads"] == 1
    for env, expected in ((None, 1), ("2", 2)):
        if env is None:
            monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        else:
            monkeypatch.setenv("OMP_NUM_THREADS", env)
        other = tmp_path / f"d{expected}"
        argv = f"train --env CartPole-v1 --run-dir {other} --preset debug --quiet --no-eval"
        try:
            assert main(argv.split()) == 0
        finally:
            torch.set_num_threads(before)
        assert yaml.safe_load((other / "config.yaml").read_text())["threads"] == expected


def test_progress_in_a_file_is_whole_lines(tmp_path):
    """Output that is not a terminal gets one readable line per finished bar, no carriage
    returns (`make demo > log` stays small)."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "worldmodels", "train", "--env", "CartPole-v1", "--no-eval"]
    argv += ["--run-dir", str(tmp_path / "r"), "--preset", "debug"]
    out = subprocess.run(argv, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "\r" not in out.stderr and "collect: 6/6 ep" in out.stderr
    assert "cma-es: " in out.stderr and len(out.stderr) < 4000


def test_a_progress_line_says_how_long_is_left_at_the_recent_rate(monkeypatch, capsys):
    """A long stage's periodic line in a file: done/total, elapsed, and an ETA from the rate
    since the previous line (a run's fast random pre-fill does not make it optimistic)."""
    from worldmodels import progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    bar = progress.LineProgress(total=1000, desc="dreamer", unit="step", initial=0)
    now[0] = 60.0
    bar.update(600)  # 600 steps in the first minute (the pre-fill) ...
    now[0] = 120.0
    bar.update(100)  # ... then 100 in the next: 300 left at 100 a minute
    now[0] = 130.0
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "dreamer: 600/1000 step (60s, eta 40s)"
    assert lines[1] == "dreamer: 700/1000 step (120s, eta 180s)"
    assert lines[2] == "dreamer: 700/1000 step (130s)"  # a closed bar has no ETA


def test_help_names_no_project_history_and_describes_the_original_flags(capsys):
    """Every command's --help speaks of the domain (no internal project history), and each
    original World Models scripts' flag kept as an alias says so."""
    import re

    from worldmodels.cli.parser import ALIASES, ORIGINAL

    history = re.compile(r"seed 0\d\d|session \d+|issue \d+", re.IGNORECASE)
    for command in ([], ["collect"], ["train"], ["evaluate"], ["compare"], ["report"],
                    ["diagnose"], ["envs"], ["train-vision"], ["train-memory"],
                    ["train-controller"]):  # fmt: skip
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        out = capsys.readouterr().out
        assert not history.search(out), (command, history.search(out))
    main(["envs"])
    assert not history.search(capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for flag in ALIASES:
        assert flag in out
    assert out.count(ORIGINAL) == len(ALIASES)
