import numpy as np
import torch

from worldmodels.config import EnvConfig
from worldmodels.data.collect import collect
from worldmodels.data.store import EpisodeStore
from worldmodels.envs import cap_frames, make_env, probe


def test_pixel_envs_become_64x64_rgb_and_carracing_discretises():
    pong = probe(EnvConfig(id="ALE/Pong-v5"))
    assert pong.obs_kind == "pixels" and pong.obs_shape == (64, 64, 3)
    assert pong.action_kind == "discrete" and pong.action_dim == 6
    car = probe(EnvConfig(id="CarRacing-v3", discrete_actions=True))
    assert car.action_kind == "discrete" and car.action_dim == 5
    car_c = probe(EnvConfig(id="CarRacing-v3"))
    assert car_c.action_kind == "continuous" and car_c.action_low == (-1.0, 0.0, 0.0)


def test_frame_skip_repeats_and_counts_env_steps():
    env = make_env(EnvConfig(id="CartPole-v1", frame_skip=3))
    env.reset(seed=0)
    _, reward, term, _, info = env.step(1)
    assert info["env_steps"] == 3 and reward == 3.0 and not term
    cap_frames(env, 2)  # a budget's last 2 frames: the action is held for 2, not 3
    assert env.step(1)[-1]["env_steps"] == 2
    cap_frames(env, 7)
    assert env.step(1)[-1]["env_steps"] == 3
    plain = make_env(EnvConfig(id="CartPole-v1", max_episode_steps=5))
    plain.reset(seed=0)
    steps = 0
    while True:
        _, _, term, trunc, info = plain.step(0 if steps % 2 else 1)
        steps += info["env_steps"]
        if term or trunc:
            break
    assert steps == 5


def test_time_feature_counts_the_env_s_steps_and_its_limit_is_an_end(capsys):
    """env.time_feature: the fraction of the step limit used is the observation's last entry
    (counted in env steps under a frame skip), the limit ends the episode as a terminal
    (info time_limit), and a pixel env or an extra step limit is refused in one line."""
    import gymnasium as gym

    from worldmodels.cli import main
    from worldmodels.envs import FrameSkip, _with_time

    cfg = EnvConfig(id="CartPole-v1", time_feature=True)
    env = FrameSkip(_with_time(gym.make("CartPole-v1", max_episode_steps=4), cfg), 3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5,) and obs[-1] == 0.0
    obs, _, term, trunc, info = env.step(1)
    assert obs[-1] == 0.75 and not term and not trunc and "time_limit" not in info
    obs, reward, term, trunc, info = env.step(0)  # the 4th env step: the limit
    assert obs[-1] == 1.0 and term and not trunc and info["time_limit"] and reward == 1.0
    assert probe(EnvConfig(id="LunarLander-v3", time_feature=True)).obs_shape == (9,)
    for sets in (["env.max_episode_steps=100"], []):
        env_id = "CartPole-v1" if sets else "CarRacing-v3"
        argv = ["train", "--env", env_id, "--run-dir", "/nonexistent/r", "--set",
                "env.time_feature=true", *[x for s in sets for x in ("--set", s)]]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "env.time_feature needs a vector env" in err


def test_user_env_class_by_module_path(monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    spec = probe(EnvConfig(id="slow_env:SlowEnv"))
    assert spec.obs_shape == (2,) and spec.action_dim == 2
    assert "slow_env" in sys.modules


def test_two_workers_collect_the_same_episodes_as_one(tmp_path):
    cfg = EnvConfig(id="CartPole-v1")
    spec = probe(cfg)
    one, two = EpisodeStore(tmp_path / "one"), EpisodeStore(tmp_path / "two")
    collect(one, cfg, spec, 6, master_seed=3, workers=1, progress=False)
    collect(two, cfg, spec, 6, master_seed=3, workers=2, progress=False)
    for i in range(6):
        a, b = one.read(i), two.read(i)
        assert np.array_equal(a.observations, b.observations)
        assert np.array_equal(a.actions, b.actions)
        assert a.meta["seed"] == b.meta["seed"]


def test_collect_with_a_trained_agent(tmp_path):
    from worldmodels import pipeline
    from worldmodels.methods.stages import load_agent_policy

    ctx = pipeline.open_run(
        tmp_path / "agent", "CartPole-v1", ["debug"], None, [], 0, "cpu", progress=False
    )
    pipeline.train(ctx, "classic", set())
    agent = {"progress": False, "loader": load_agent_policy}
    store = EpisodeStore(tmp_path / "eps")
    collect(store, ctx.cfg.env, ctx.spec, 2, 0, policy=str(tmp_path / "agent"), **agent)
    assert store.read(0).meta["policy"] == str(tmp_path / "agent")
    # the agent's actions are the controller's deterministic argmax: replaying gives the same
    again = EpisodeStore(tmp_path / "eps2")
    collect(again, ctx.cfg.env, ctx.spec, 2, 0, policy=str(tmp_path / "agent"), **agent)
    assert np.array_equal(store.read(1).actions, again.read(1).actions)


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from worldmodels.cli import main
    from worldmodels.models.vision.mlp_vae import MlpVAE

    run = tmp_path / "nan"
    assert (
        main(
            [
                "collect",
                "--env",
                "CartPole-v1",
                "--run-dir",
                str(run),
                "--preset",
                "debug",
                "--quiet",
            ]
        )
        == 0
    )
    original = MlpVAE.loss
    calls = {"n": 0}

    def poisoned(self, obs, beta, kl_tolerance, generator=None):
        loss, m = original(self, obs, beta, kl_tolerance, generator)
        calls["n"] += 1
        if self.training and calls["n"] > 12:
            return loss * float("nan"), {**m, "loss": float("nan")}
        return loss, m

    monkeypatch.setattr(MlpVAE, "loss", poisoned)
    rc = main(["train-vision", "--run-dir", str(run), "--quiet", "--set", "vision.epochs=50"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "vision training diverged: loss is nan" in err
    assert len(err.splitlines()) == 1
    last = torch.load(run / "checkpoints/vision/last.pt", weights_only=True)
    assert last["progress"]["epoch"] >= 1 and not last["progress"]["complete"]
    assert all(
        torch.isfinite(v).all()
        for v in last["model"]["state_dict"].values()
        if v.is_floating_point()
    )


def test_time_limit_is_in_agent_steps_under_frame_skip():
    """Regression (bug 8): CarRacing's 1,000-step limit was read as 1,000 agent steps under
    frame skip 2, so the dream's horizon was twice the real episode's."""
    from worldmodels.config import EnvConfig
    from worldmodels.envs import probe

    assert probe(EnvConfig(id="CarRacing-v3")).max_episode_steps == 1000
    spec = probe(EnvConfig(id="CarRacing-v3", frame_skip=2))
    assert spec.max_episode_steps == 500
    assert (
        probe(EnvConfig(id="CarRacing-v3", frame_skip=2, max_episode_steps=40)).max_episode_steps
        == 40
    )


def test_dream_horizon_matches_the_real_episode_under_frame_skip():
    from worldmodels.config import Config
    from worldmodels.dream import dream_horizon
    from worldmodels.envs import probe

    cfg = Config()
    cfg.env.id, cfg.env.frame_skip = "CarRacing-v3", 2
    assert dream_horizon(cfg, probe(cfg.env)) == 500  # was 1,000


def test_atari_repeats_each_action_4_frames_and_max_pools_the_last_two():
    """An ALE agent step: the action held for 4 frames under sticky actions 0.25, the frame the
    pixel-wise max of the last two, counted as one env step (SB3's and rl-zoo's convention)."""
    import gymnasium as gym

    from worldmodels.envs import ResizeFrame

    env = make_env(EnvConfig(id="ALE/Breakout-v5", image_size=32))
    raw = gym.make("ALE/Breakout-v5", frameskip=1)
    assert raw.unwrapped._frameskip == 1 and raw.spec.kwargs["repeat_action_probability"] == 0.25
    resize = ResizeFrame(raw, 32)
    obs, _ = env.reset(seed=3)
    first, _ = raw.reset(seed=3)
    assert np.array_equal(obs, resize.observation(first))
    for action in (1, 3, 3, 2, 2, 2):  # fire, then move: the ball and paddle change frames
        obs, reward, _, _, info = env.step(action)
        frames, raw_reward = [], 0.0
        for _ in range(4):
            frame, r, *_ = raw.step(action)
            frames.append(frame)
            raw_reward += float(r)
        assert info["env_steps"] == 1 and reward == raw_reward
        assert np.array_equal(obs, resize.observation(np.maximum(frames[-2], frames[-1])))
    assert not np.array_equal(frames[-2], frames[-1])  # the max is not just the last frame
