"""The dream env, imagine(), the actor-critic's distributions, and the three imagination
methods end to end (dream CMA-ES, a2c, wm-ppo) at debug size, including kill + resume."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from torch.distributions import AffineTransform, TanhTransform, TransformedDistribution

from worldmodels import pipeline
from worldmodels.cli import main
from worldmodels.data.store import EpisodeStore
from worldmodels.dream import DreamEnv, Dreaming, DreamSingleEnv
from worldmodels.envs import EnvSpec
from worldmodels.errors import TrainingDivergedError, UserError
from worldmodels.methods import get
from worldmodels.methods.dream import dream_parts
from worldmodels.rl.actor_critic import ActorCritic
from worldmodels.rl.ppo import ppo_update


@pytest.fixture(scope="module")
def world_run(tmp_path_factory):
    """A debug CartPole run with V and M trained (no controller)."""
    run_dir = tmp_path_factory.mktemp("imag") / "cp"
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    assert main([*argv, "--quiet", "--skip-controller", "--no-eval"]) == 0
    return run_dir


def _parts(run_dir):
    ctx = pipeline.open_run(run_dir, progress=False)
    return ctx, *dream_parts(ctx)


def _passes_check_env(env) -> None:
    """Gymnasium's ``check_env``, every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


def test_single_dream_env_passes_gymnasium_check_env(world_run):
    _, world, starts = _parts(world_run)
    _passes_check_env(DreamSingleEnv(world, starts, Dreaming(horizon=20)))


def test_dream_vector_env_same_step_autoreset_and_horizon(world_run):
    _, world, starts = _parts(world_run)
    n, horizon = 64, 4
    env = DreamEnv(world, starts, n, Dreaming(horizon=horizon, done_mode="threshold"))
    obs, _ = env.reset(seed=3)
    assert obs.shape == (n, world.feature_dim) and obs.dtype == np.float32
    ended_before = np.zeros(n, dtype=bool)
    for t in range(horizon):
        obs, rew, term, trunc, info = env.step(np.zeros(n, dtype=np.int64))
        assert rew.shape == (n,) and np.isfinite(rew).all()
        done = term | trunc
        if t < horizon - 1:
            assert not trunc.any()
            ended_before |= term
        else:  # an env that never ended is cut exactly at the horizon
            assert np.array_equal(trunc, ~ended_before & ~term)
        if done.any():
            assert np.array_equal(info["_final_obs"], done)
            assert np.isfinite(info["final_obs"][done]).all()
            assert not np.array_equal(info["final_obs"][done], obs[done])  # reset in place


def test_the_dream_ends_where_an_ensemble_disagrees_more_than_on_real_data(world_run, tmp_path):
    """MOReL's unknown-state halt: the yardstick is M's disagreement on every real transition
    the starts were built from; a single M knows every state."""
    run_dir = tmp_path / "ens"
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    argv += ["--quiet", "--skip-controller", "--no-eval", "--set", "memory.ensemble=2"]
    assert main(argv) == 0
    _, world, starts = _parts(run_dir)
    store = EpisodeStore(run_dir / "data" / "episodes")
    transitions = sum(store.read(i).length - 1 for i in store.indices())
    assert 0 < len(starts.spread) <= transitions  # the training split's
    assert (starts.spread > 0).all()
    assert starts.known(0.0) <= starts.known(0.5) <= starts.known(1.0)
    n = 256
    ends = {}
    for unknown in (None, 0.0, 1.0):  # the same seed: the same starts and done-head draws
        how = Dreaming(horizon=50, done_mode="sample", unknown=unknown)
        env = DreamEnv(world, starts, n, how)
        env.reset(seed=0)
        ends[unknown] = env.step(np.zeros(n, dtype=np.int64))[2]
    # the halt only adds ends: many past the least disagreement seen on real data, few past
    # the most
    assert (ends[0.0] >= ends[None]).all() and (ends[1.0] >= ends[None]).all()
    assert ends[0.0].mean() > ends[None].mean() + 0.2
    assert ends[1.0].mean() < ends[None].mean() + 0.1
    _, _, single = _parts(world_run)
    assert len(single.spread) == 0 and single.known(0.0) == math.inf


def test_done_tau_sharpens_the_sampled_ends_and_at_zero_is_the_threshold(world_run, monkeypatch):
    """The done head's p, fixed at 0.02 for half the dreams and 0.9 for the rest: at done_tau
    1 about 2% and 90% of them end per step; at 0.25 the end is drawn with p' =
    sigmoid(logit(p) / 0.25), about 2e-7 and 0.9998; at 0 it is the threshold p > 0.5."""
    _, world, starts = _parts(world_run)
    n = 4000
    p = torch.cat([torch.full((n // 2,), 0.02), torch.full((n // 2,), 0.9)])
    real_step = world.dream_step

    def fixed_done(*args, **kwargs):
        return real_step(*args, **kwargs)._replace(done_prob=p)

    monkeypatch.setattr(world, "dream_step", fixed_done)

    def ends(**how) -> np.ndarray:
        env = DreamEnv(world, starts, n, Dreaming(horizon=50, **how))
        env.reset(seed=0)
        return env.step(np.zeros(n, dtype=np.int64))[2]

    low, high = slice(0, n // 2), slice(n // 2, n)
    own = ends(done_mode="sample")
    assert abs(own[low].mean() - 0.02) < 0.01 and abs(own[high].mean() - 0.9) < 0.03
    sharp = ends(done_mode="sample", done_tau=0.25)
    assert sharp[low].sum() == 0 and sharp[high].mean() > 0.995
    assert np.array_equal(ends(done_mode="sample", done_tau=0.0), ends(done_mode="threshold"))
    with pytest.raises(ValueError, match="done_tau"):
        Dreaming(done_tau=-1.0)


def test_imagine_is_one_batched_step_per_dream_step_and_masks_after_the_end(world_run):
    _, world, starts = _parts(world_run)
    z, state = starts.sample(32, torch.Generator().manual_seed(0))

    def policy(features, t):
        return torch.full((features.shape[0],), t % 2, dtype=torch.long)

    a = world.imagine(z, state, policy, 12, 1.0, torch.Generator().manual_seed(5), "sample")
    b = world.imagine(z, state, policy, 12, 1.0, torch.Generator().manual_seed(5), "sample")
    assert torch.equal(a.features, b.features)  # seeded: reproducible
    assert a.features.shape == (32, 13, world.feature_dim) and a.rewards.shape == (32, 12)
    # the same trajectory, step by step through dream_step
    gen = torch.Generator().manual_seed(5)
    zz, ss = z, state
    for t in range(12):
        step = world.dream_step(zz, policy(a.features[:, t], t), ss, 1.0, gen)
        torch.rand(step.done_prob.shape, generator=gen)  # imagine's termination draw
        zz, ss = step.z, step.state
        assert torch.allclose(step.reward, a.rewards[:, t])
    first_end = torch.argmax(a.terminated.int(), 1)
    for row in range(32):
        if a.terminated[row].any():
            k = int(first_end[row])
            assert a.alive[row, : k + 1].eq(1).all() and a.alive[row, k + 1 :].eq(0).all()


def test_dream_needs_a_trained_memory(tmp_path, capsys):
    run_dir = tmp_path / "nom"
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    argv += ["--method", "dream"]
    assert main([*argv, "--quiet", "--skip-memory", "--skip-controller", "--no-eval"]) == 0
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run_dir), "--method", "dream", "--skip-memory"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a trained M" in err and "train-memory" in err
    with pytest.raises(UserError, match="trained M"):
        _parts(run_dir)


def test_dream_method_trains_without_real_steps(tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "dream"
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    assert main([*argv, "--method", "dream", "--quiet", "--skip-controller", "--no-eval"]) == 0
    collected = get("dream").real_env_steps(pipeline.open_run(run_dir, progress=False))
    argv = ["train", "--run-dir", str(run_dir), "--method", "dream", "--quiet", "--tau", "1.2"]
    assert main(argv) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["method"] == "dream"
    assert result["real_env_steps"] == collected  # CMA-ES took no real step
    # the paper's iterative procedure: the controller collects, M is retrained, C again
    argv += ["--set", "dream.iterations=2", "--set", "dream.collect_episodes=3"]
    shutil.rmtree(run_dir / "checkpoints" / "controller")
    assert main(argv) == 0
    assert (run_dir / "checkpoints" / "controller_iter1" / "best.pt").exists()
    assert json.loads((run_dir / "dream_iterations.json").read_text()) == {"completed": 1}
    store = EpisodeStore(run_dir / "data" / "episodes")
    assert len(store.indices()) == 6 + 3
    assert store.read_meta(8)["policy"] == str(run_dir)
    mem = torch.load(run_dir / "checkpoints/memory/best.pt", weights_only=True)
    assert mem["progress"]["retrained_on_episodes"] > 0
    assert "memory:\n" in (run_dir / "config.yaml").read_text()
    assert "temperature: 1.2" in (run_dir / "config.yaml").read_text()


def _spec(kind):
    if kind == "discrete":
        return EnvSpec("x", "vector", (3,), "discrete", 4, (0.0,), (3.0,), None, None)
    return EnvSpec("x", "vector", (3,), "continuous", 2, (-2.0, 0.0), (2.0, 1.0), None, None)


def test_squashed_gaussian_log_prob_has_the_change_of_variables_correction():
    spec = _spec("continuous")
    torch.manual_seed(0)
    ac = ActorCritic(5, spec)
    feats = torch.randn(7, 5)
    dist = ac.dist(feats)
    raw = dist.sample()
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    ref = TransformedDistribution(
        dist.normal, [TanhTransform(), AffineTransform((low + high) / 2, (high - low) / 2)]
    )
    action = dist.to_env(raw)
    assert ((action >= low) & (action <= high)).all()
    assert torch.allclose(dist.log_prob(raw), ref.log_prob(action).sum(-1), atol=1e-4)


def test_continuous_entropy_bonus_widens_the_policy():
    """Regression (bug 6): the bonus was -log pi(a_old), whose gradient in log sigma has zero
    mean; the pre-tanh Gaussian's entropy has d/d log sigma = 1 per action dimension."""
    spec = _spec("continuous")
    ac = ActorCritic(5, spec)
    dist = ac.dist(torch.randn(7, 5))
    entropy = dist.entropy(dist.sample())
    expected = (0.5 * math.log(2 * math.pi * math.e) + ac.log_std).sum().expand(7)
    assert torch.allclose(entropy, expected, atol=1e-5)
    (grad,) = torch.autograd.grad(entropy.mean(), ac.log_std)
    assert torch.allclose(grad, torch.ones_like(grad))


def test_ppo_stops_on_a_non_finite_loss_naming_it_and_the_step():
    spec = _spec("discrete")
    ac = ActorCritic(3, spec)
    n = 16
    batch = {
        "features": torch.randn(n, 3),
        "raw": torch.randint(4, (n,)),
        "log_probs": torch.full((n,), -math.log(4)),
        "rewards": torch.zeros(n),
        "advantages": torch.randn(n),
        "returns": torch.full((n,), float("nan")),
    }
    opt = torch.optim.Adam(ac.parameters())
    with pytest.raises(TrainingDivergedError, match=r"PPO value_loss is not finite at iteration 7"):
        ppo_update(ac, opt, batch, 1, 8, 0.2, 0.5, 0.0, 0.5, "iteration 7", torch.Generator())


A2C_SETS = ["ac.total_steps=96", "ac.num_envs=2", "ac.n_steps=16", "ac.stop_window=2"]


@pytest.mark.parametrize("end_to_end", [True, False])
def test_a2c_trains_vision_end_to_end_only_when_asked(tmp_path, end_to_end):
    run_dir = tmp_path / "a2c"
    sets = [*A2C_SETS, f"ac.end_to_end={str(end_to_end).lower()}", "ac.vision_coef=0"]
    sets += ["ac.memory_coef=0", "ac.target_return=1e9"]
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    argv += ["--method", "a2c", "--quiet"] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 0
    init = torch.load(run_dir / "checkpoints/vision/best.pt", weights_only=True)
    last = torch.load(run_dir / "checkpoints/a2c/last.pt", weights_only=True)
    assert last["progress"]["real_env_steps"] >= 96
    changed = any(
        not torch.equal(v, last["vision_state"][k])
        for k, v in init["model"]["state_dict"].items()
        if v.is_floating_point()
    )
    # with no vision or memory loss, only the actor-critic's gradient can move the encoder
    assert changed is end_to_end
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["method"] == "a2c" and np.isfinite(result["mean_return"])


def test_continuous_actions_a2c_and_dream_env(tmp_path):
    run_dir = tmp_path / "pend"
    sets = ["ac.total_steps=64", "ac.num_envs=2", "ac.n_steps=8", "ac.stop_window=1"]
    sets += ["imagination.horizon=4", "ac.pretrain_memory=true"]
    argv = ["train", "--env", "Pendulum-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    argv += ["--method", "a2c", "--quiet"] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 0
    result = json.loads((run_dir / "eval.json").read_text())
    assert np.isfinite(result["mean_return"]) and result["real_env_steps"] >= 64
    _, world, starts = _parts(run_dir)
    _passes_check_env(DreamSingleEnv(world, starts, Dreaming(horizon=10)))


def test_wm_ppo_best_agent_keeps_the_world_model_it_was_trained_on(tmp_path):
    """Regression (bug 1): wm-ppo saved its best actor-critic without V and M, then retrained
    M, and evaluation judged the old policy on the new M's features."""
    from worldmodels.methods.actor_critic import trained_agent

    run_dir = tmp_path / "wm"
    sets = ["imagination.retrain_every=1", "imagination.retrain_epochs=1", "ac.stop_window=999"]
    sets += ["ac.total_steps=96", "ac.num_envs=2", "ac.n_steps=16", "ac.eval_every=0"]
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    argv += ["--method", "wm-ppo", "--quiet", "--no-eval"] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 0
    best = torch.load(run_dir / "checkpoints/wm_ppo/best.pt", weights_only=True)
    assert best["progress"]["iteration"] == 1  # never improved on: saved once, then M moved on
    latest = torch.load(run_dir / "checkpoints/memory/best.pt", weights_only=True)
    key = next(iter(best["memory_state"]))
    assert not torch.equal(best["memory_state"][key], latest["model"]["state_dict"][key])
    world, _ = trained_agent(pipeline.open_run(run_dir, progress=False), "wm_ppo", "wm-ppo")
    assert torch.equal(world.memory.state_dict()[key], best["memory_state"][key])


def test_planning_on_an_a2c_run_uses_the_world_model_a2c_trained(tmp_path):
    """Regression (bug 2): ``--use-a2c --use-improved-controller`` planned with the V and M
    from before A2C while the actor saw the end-to-end trained ones."""
    from worldmodels.methods.mpc import planner_policies
    from worldmodels.methods.stages import world_model

    run_dir = tmp_path / "a2c"
    sets = [*A2C_SETS, "ac.target_return=1e9"]
    argv = ["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--preset", "debug"]
    argv += ["--method", "a2c", "--quiet", "--no-eval"] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 0
    best = torch.load(run_dir / "checkpoints/a2c/best.pt", weights_only=True)
    before = torch.load(run_dir / "checkpoints/memory/best.pt", weights_only=True)
    key = next(iter(best["memory_state"]))
    assert not torch.equal(best["memory_state"][key], before["model"]["state_dict"][key])
    ctx = pipeline.open_run(run_dir, set_items=["planner.blend=0.3"], progress=False)
    policy = planner_policies(ctx, world_model(ctx), "auto")(1)
    assert torch.equal(policy.world.memory.state_dict()[key], best["memory_state"][key])
