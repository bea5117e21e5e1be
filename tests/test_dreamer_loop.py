"""The Dreamer training loop (``training/dreamer/loop.py``): how training episodes act and
are scored, bit-exact resume after SIGKILL, the held agent's confirmed stop, resuming a
finished run, refusals before any work, a NaN stop, episode ends and the budget's cut."""

import itertools
import json
import os
import signal

import numpy as np
import pytest
import torch
from dreamer_cli import DEBUG, run_cmd, train_cmd

from worldmodels.cli import main
from worldmodels.data.store import EpisodeStore
from worldmodels.runs import RunDir


def test_act_policy_picks_how_training_episodes_act(tmp_path, monkeypatch):
    """act_policy: sample (DreamerV3's) samples every training decision after the pre-fill,
    in every episode; mode acts by the most likely values, as evaluated. score_every 2: the
    odd episodes act as evaluated (the mode) and only they are scored, so the curve has a
    point per odd episode, the mean of their returns; the even ones sample."""
    from worldmodels.training.dreamer import loop

    real, seen = loop.Dreamer.act, []

    def spy(self, obs, state, first, mode):  # type: ignore[no-untyped-def]
        seen.append(mode)
        return real(self, obs, state, first, mode)

    monkeypatch.setattr(loop.Dreamer, "act", spy)
    chosen = []
    real_episode = loop._episode

    def episode(env, agent, replay, rng, cfg, prog):  # type: ignore[no-untyped-def]
        before = len(seen)
        out = real_episode(env, agent, replay, rng, cfg, prog)
        chosen.append((prog.episodes, set(seen[before:])))
        return out

    monkeypatch.setattr(loop, "_episode", episode)
    runs = {}
    measured = ["dreamer.act_policy=sample", "dreamer.score_every=2"]
    for policy in ("sample", "mode", "measured"):
        seen.clear(), chosen.clear()
        sets = [f"dreamer.act_policy={policy}"] if policy != "measured" else measured
        argv = ["train", "--run-dir", str(tmp_path / policy), *DEBUG, "--set",
                "evaluate.episodes=1", "--set", "dreamer.stop_window=3"]  # fmt: skip
        argv += [x for s in sets for x in ("--set", s)]
        assert main(argv) == 0
        runs[policy] = [(i, modes) for i, modes in chosen if modes]  # past the pre-fill
    assert runs["sample"] and all(m == {False} for _, m in runs["sample"])
    assert runs["mode"] and all(m == {True} for _, m in runs["mode"])
    measuring = runs["measured"]
    assert {i % 2 for i, _ in measuring} == {0, 1}
    assert all(m == {i % 2 == 1} for i, m in measuring)
    episodes = EpisodeStore(RunDir(tmp_path / "measured").episodes)
    metas = [ep.meta for _, ep in episodes.iter_episodes(episodes.valid_indices())]
    acted = [m["acted"] for m in metas]
    assert acted == ["sample", "mode"] * (len(metas) // 2) + ["sample"] * (len(metas) % 2)
    assert [m["scored"] for m in metas] == [i % 2 == 1 for i in range(len(metas))]
    odd = [m["return"] for m in metas[1::2]]
    curve = RunDir(tmp_path / "measured").curve()
    assert len(curve) == len(odd) >= 2
    assert [r for _, r in curve] == pytest.approx(
        [np.mean(odd[max(0, k - 2) : k + 1]) for k in range(len(odd))]
    )


def test_dreamer_killed_resumes_bit_exact(tmp_path):
    """SIGKILL right after the 14th save of dreamer/last; --resume ends where an uninterrupted
    run ends: same weights, optimiser moments, counters and stored episodes, and the wall time
    before the kill is kept (with the exploration ensemble on, so its weights and optimiser
    are checked too, and Monte Carlo value targets with episodes cut at 10 steps, whose
    bootstrap values the rebuilt replay reads back from the store)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sets = ["--set", "threads=1", "--set", "dreamer.expl_scale=0.1", "--no-eval",
            "--set", "dreamer.repval_return=max", "--set", "env.max_episode_steps=10",
            # the rates this test's trajectory was checked with (a cut episode before the kill)
            "--set", "dreamer.repval_scale=1.0", "--set", "dreamer.actor_lr=3e-4",
            "--set", "dreamer.critic_lr=1e-3", "--set", "dreamer.entropy=1e-4"]  # fmt: skip
    ref = run_cmd(train_cmd(tmp_path / "ref", *DEBUG, *sets), env)
    assert ref.returncode == 0, ref.stderr
    kill = {**env, "WORLDMODELS_KILL_AFTER_SAVE": "dreamer/last:14"}  # past the random prefill
    cut = tmp_path / "cut"
    killed = run_cmd(train_cmd(cut, *DEBUG, *sets), kill)
    assert killed.returncode == -signal.SIGKILL
    at_kill = torch.load(cut / "checkpoints/dreamer/last.pt", weights_only=True)["progress"]
    assert at_kill["agent_steps"] > 100 and at_kill["updates"] > 0  # past the pre-fill (100)
    wall = json.loads((cut / "counters.json").read_text())["wall_seconds"]["dreamer"]
    assert wall > 0  # timed up to the checkpoint it was killed after
    refused = run_cmd(train_cmd(cut, "--quiet", "--no-eval"), env)
    assert refused.returncode == 2 and "pass --resume" in refused.stderr
    done = run_cmd(train_cmd(cut, "--resume", "--quiet", "--no-eval"), env)
    assert done.returncode == 0, done.stderr
    assert json.loads((cut / "counters.json").read_text())["wall_seconds"]["dreamer"] > wall
    a = torch.load(tmp_path / "ref/checkpoints/dreamer/last.pt", weights_only=True)
    b = torch.load(cut / "checkpoints/dreamer/last.pt", weights_only=True)
    assert a["progress"] == b["progress"] and a["progress"]["updates"] > 0
    assert a["expl"] and a["optimizers"]["expl"]["state"]
    for part in ("actor", "critic", "slow_critic", "expl"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), (part, k)
    for k, v in a["world"]["state_dict"].items():
        assert torch.equal(v, b["world"]["state_dict"][k]), k
    for opt in ("model", "actor", "critic", "expl"):
        moments = a["optimizers"][opt]["state"][0]["exp_avg"]
        assert torch.equal(moments, b["optimizers"][opt]["state"][0]["exp_avg"])
    assert sorted(os.listdir(tmp_path / "ref/data/episodes")) == sorted(
        os.listdir(cut / "data/episodes")
    )
    from worldmodels.data.store import EpisodeStore

    stores = [EpisodeStore(d / "data/episodes") for d in (tmp_path / "ref", cut)]
    metas = [[s.read(i).meta for i in s.indices()] for s in stores]
    assert metas[0] == metas[1]
    assert sum("boot_value" in m for m in metas[0][:14]) > 0  # cut before the kill, too


def test_stop_confirm_holds_the_agent_and_stops_on_its_own_episodes(tmp_path, monkeypatch):
    """stop_confirm with target 20 and window 2: a scored episode of the agent's at 20 holds
    it (no update in the next episodes; the random pre-fill's episodes hold nothing), a held
    one under 20 releases it (updates again), and the run stops after 2 held episodes at 20,
    with the held agent as the best checkpoint."""
    from worldmodels.training.dreamer import loop

    log = []
    real_episode = loop._episode

    def episode(env, agent, replay, rng, cfg, prog):  # type: ignore[no-untyped-def]
        before = prog.updates
        out = real_episode(env, agent, replay, rng, cfg, prog)
        log.append((out[0].meta["return"], prog.updates - before, out[0].meta["policy"]))
        return out

    monkeypatch.setattr(loop, "_episode", episode)
    sets = ["dreamer.target_return=20", "dreamer.stop_window=2", "dreamer.total_steps=4000",
            "dreamer.stop_confirm=true",  # float32: the trajectory this test was written on
            "dreamer.bf16=false",  # and its rates and replay values
            "dreamer.actor_lr=3e-4", "dreamer.critic_lr=1e-3", "dreamer.entropy=1e-4",
            "dreamer.repval_scale=1.0", "dreamer.repval_return=mc"]  # fmt: skip
    argv = ["train", "--run-dir", str(tmp_path / "r"), *DEBUG, "--no-eval"]
    assert main(argv + [x for s in sets for x in ("--set", s)]) == 0
    learned = [i for i, (_, _, policy) in enumerate(log) if policy != "random"]
    assert any(r >= 20 for r, _, p in log if p == "random")  # random play reaches 20 ...
    assert log[learned[0]][1] > 0  # ... and holds nothing
    for prev, (ret, updates, _) in itertools.pairwise(log[learned[0] :]):
        assert (updates == 0) == (prev[0] >= 20), (prev, ret, updates)  # held after a 20
    returns = [r for r, _, _ in log]
    assert min(returns[-3:]) >= 20 and log[-1][1] == log[-2][1] == 0
    assert any(r >= 20 for r in returns[learned[0] : -3])  # a release before the stop
    run = RunDir(tmp_path / "r")
    best, last = (run.load(f"dreamer/{k}") for k in ("best", "last"))
    for k, v in last["actor"].items():
        assert torch.equal(v, best["actor"][k]), k
    assert last["progress"]["held"] == 2 and last["progress"]["holding"]


def test_a_finished_run_goes_on_when_resumed_with_a_higher_target_or_budget(tmp_path, monkeypatch):
    """Stopped by its target (0: CartPole's first 5 episodes, its window, reach it), the run
    goes on to the budget when resumed with an unreachable target; with ``stop_at_target`` off
    it trains to a larger budget past a reached target; resumed again as it is, it does nothing; and
    ``eval_checkpoint`` picks the agent ``evaluate`` loads."""
    import worldmodels.methods.dreamer as dreamer_method

    run = tmp_path / "r"

    def progress() -> dict:
        return torch.load(run / "checkpoints/dreamer/last.pt", weights_only=True)["progress"]

    first = [
        "train",
        *DEBUG,
        "--run-dir",
        str(run),
        "--no-eval",
        "--set",
        "dreamer.stop_confirm=false",
    ]  # the plain stop (CartPole's preset confirms it)
    assert main([*first, "--set", "dreamer.target_return=0"]) == 0
    stopped = progress()
    assert stopped["complete"] and stopped["episodes"] == 5 and stopped["env_steps"] < 300
    resume = ["train", "--run-dir", str(run), "--resume", "--quiet", "--no-eval"]
    assert main([*resume, "--set", "dreamer.target_return=1e9"]) == 0
    assert progress()["env_steps"] == 300 and progress()["episodes"] > 5
    sets = ["dreamer.target_return=0", "dreamer.stop_at_target=false", "dreamer.total_steps=400"]
    assert main([*resume, *(x for s in sets for x in ("--set", s))]) == 0
    longer = progress()
    assert longer["complete"] and longer["env_steps"] == 400 and longer["updates"] > 0
    assert main(resume) == 0
    assert progress() == longer

    loaded: list[str] = []
    real = dreamer_method.load_dreamer
    monkeypatch.setattr(dreamer_method, "load_dreamer", lambda *a: loaded.append(a[-1]) or real(*a))
    evaluate = ["evaluate", "--run-dir", str(run), "--quiet", "--episodes", "2"]
    assert main(evaluate) == 0
    assert main([*evaluate, "--set", "dreamer.eval_checkpoint=last"]) == 0
    assert loaded == ["best", "last"]


@pytest.mark.parametrize(
    "sets, message",
    [
        (["dreamer.encoder=cnn"], "dreamer.encoder=cnn needs pixel observations"),
        (["dreamer.replay_memory_gb=1e-9"], "GiB, more than dreamer.replay_memory_gb"),
        (["dreamer.classes=1"], "classes and dreamer.bins must be >= 2"),
        (["dreamer.unimix=nan"], "dreamer.unimix=nan is not finite"),
        (["dreamer.imag_last=99"], "dreamer.imag_last must be <= dreamer.seq_len"),
        (["dreamer.expl_heads=1"], "dreamer.expl_heads must be >= 2"),
        (["dreamer.eval_policy=greedy"], "dreamer.eval_policy must be mode"),
        (["dreamer.eval_checkpoint=final"], "dreamer.eval_checkpoint must be best"),
        (["dreamer.end_fraction=1.5"], "dreamer.end_fraction=1.5 is out of range"),
        (["dreamer.prio_fraction=0.5"], "config key 'dreamer.prio_fraction' was removed"),
        (["dreamer.actor_grad_mix=2"], "dreamer.actor_grad_mix must be in [0, 1]"),
        (["dreamer.act_policy=greedy"], "dreamer.act_policy must be sample"),
        (["dreamer.score_every=0"], "dreamer.score_every"),
        (["dreamer.repval_return=td"], "dreamer.repval_return must be lambda, mc or max"),
        (["dreamer.repval_return=mc", "dreamer.repval_scale=0"], "needs dreamer.repval_scale > 0"),
    ],
)
def test_bad_dreamer_config_is_one_line_before_any_work(tmp_path, capsys, sets, message):
    argv = ["train", "--run-dir", str(tmp_path / "r"), *DEBUG]
    assert main(argv + [x for s in sets for x in ("--set", s)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_nan_loss_stops_with_its_name_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, capsys
):
    import worldmodels.models.rssm as rssm

    real = rssm.DreamerWorldModel.loss
    calls = {"n": 0}

    def poisoned(self, batch):
        out = real(self, batch)
        calls["n"] += 1
        if calls["n"] > 20:
            out.parts["rew"] = out.parts["rew"] * float("nan")
        return out

    monkeypatch.setattr(rssm.DreamerWorldModel, "loss", poisoned)
    run = tmp_path / "r"
    assert main(["train", "--run-dir", str(run), *DEBUG, "--set", "threads=1"]) == 1
    err = capsys.readouterr().err
    assert "loss model/rew became nan at update 20" in err
    last = torch.load(run / "checkpoints/dreamer/last.pt", weights_only=True)
    assert last["progress"]["updates"] <= 20
    for v in last["world"]["state_dict"].values():
        assert torch.isfinite(v.float()).all()


def test_pixel_frames_not_a_power_of_2_wide_are_one_line_before_any_work(tmp_path, capsys):
    argv = ["train", "--env", "CarRacing-v3", "--method", "dreamer", "--preset", "debug"]
    argv += ["--quiet", "--run-dir", str(tmp_path / "r"), "--set", "env.image_size=48"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "power of 2 wide" in err and "(48, 48, 3)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_pixels_train_and_diagnose_with_a_truth_prediction_error_video(tmp_path):
    """CarRacing-v3 from the preset's 32x32 frames through the CNN codec: a short run trains, and
    ``diagnose`` writes the truth / prediction / |error| gif of the RSSM's open-loop frames."""
    import imageio.v2 as imageio

    run = tmp_path / "r"
    argv = ["train", "--env", "CarRacing-v3", "--method", "dreamer", "--preset", "debug"]
    argv += ["--run-dir", str(run), "--quiet", "--episodes", "1"]
    sets = ["dreamer.total_steps=120", "dreamer.prefill=60", "env.max_episode_steps=40"]
    assert main(argv + [x for s in sets for x in ("--set", s)]) == 0
    assert main(["diagnose", "--run-dir", str(run), "--horizon", "4"]) == 0
    frames = imageio.mimread(run / "videos/diagnose.gif")
    assert len(frames) == 5 and frames[0].shape[:2] == (3 * 32, 32)
    result = json.loads((run / "diagnostics.json").read_text())
    assert np.isfinite(result["obs_mse"]["model"]).all()


def test_time_feature_run_stores_the_limit_as_an_end(tmp_path):
    """env.time_feature on Pendulum (200-step limit): every full episode ends as a terminal
    marked time_limit with the feature at 1; the budget's cut is still a cut."""
    from worldmodels.data.store import EpisodeStore

    run = tmp_path / "r"
    argv = ["train", "--env", "Pendulum-v1", "--method", "dreamer", "--preset", "debug",
            "--quiet", "--no-eval", "--run-dir", str(run), "--set", "env.time_feature=true",
            "--set", "env.max_episode_steps=0", "--set", "dreamer.total_steps=450"]  # fmt: skip
    assert main(argv) == 0
    store = EpisodeStore(run / "data/episodes")
    eps = [store.read(i) for i in store.indices()]
    assert [e.length for e in eps] == [200, 200, 50]
    for e in eps[:2]:
        assert e.terminated[-1] and e.meta["time_limit"] and e.observations[-1, -1] == 1.0
    assert not eps[2].terminated[-1] and not eps[2].meta["time_limit"]
    assert eps[2].observations[-1, -1] == 0.25


def test_a_frame_skipped_run_ends_exactly_at_its_budget(tmp_path):
    """Every action held 2 frames and an odd budget: the last action is held for 1, so the
    run uses its 301 real steps, not 302, and the stored episodes count them."""
    from worldmodels.data.store import EpisodeStore

    run = tmp_path / "r"
    argv = ["train", "--env", "Pendulum-v1", "--method", "dreamer", "--preset", "debug",
            "--quiet", "--no-eval", "--run-dir", str(run), "--set", "env.frame_skip=2",
            "--set", "dreamer.total_steps=301"]  # fmt: skip
    assert main(argv) == 0
    last = torch.load(run / "checkpoints/dreamer/last.pt", weights_only=True)
    assert last["progress"]["env_steps"] == 301 and last["progress"]["agent_steps"] == 151
    store = EpisodeStore(run / "data/episodes")
    assert sum(store.read(i).meta["env_steps"] for i in store.indices()) == 301
