"""The residual MLP dynamics model: its training modes' losses against hand computations,
ensemble disagreement, early stopping, and the identity V + residual M end to end."""

import json

import pytest
import torch
from cli_runs import train_debug

from worldmodels.cli import main
from worldmodels.models.memory import build_memory
from worldmodels.models.memory.base import MemoryBatch
from worldmodels.models.memory.ensemble import Ensemble
from worldmodels.models.memory.residual_mlp import ResidualMLP


def _batch(t_len=5, b=2, z_dim=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return MemoryBatch(
        z=torch.randn(b, t_len + 1, z_dim, generator=g),
        actions=torch.nn.functional.one_hot(torch.randint(2, (b, t_len), generator=g), 2).float(),
        rewards=torch.ones(b, t_len),
        dones=torch.zeros(b, t_len),
        mask=torch.ones(b, t_len),
    )


def _zero_delta(model):
    torch.nn.init.zeros_(model.delta.weight)
    torch.nn.init.zeros_(model.delta.bias)
    return model


def test_single_step_loss_by_hand_with_feature_weights():
    batch = _batch()
    model = _zero_delta(ResidualMLP(3, 2, 16, feature_weights=[1.0, 2.0, 0.0]))
    _, parts = model.loss(batch)
    # a zero delta predicts z_{t+1} = z_t
    diff = (batch.z[:, :-1] - batch.z[:, 1:]).pow(2) * torch.tensor([1.0, 2.0, 0.0])
    assert parts["z_loss"] == pytest.approx(float(diff.mean(-1).mean()), rel=1e-5)


def test_multistep_loss_is_the_weighted_open_loop_error_by_hand():
    batch = _batch(t_len=5)
    model = _zero_delta(
        ResidualMLP(3, 2, 16, mode="multistep", rollout_steps=3, step_weights=[1.0, 0.5, 0.25])
    )
    _, parts = model.loss(batch)
    z = batch.z
    starts = 5 - 3 + 1
    per_k = [
        (z[:, :starts] - z[:, k + 1 : k + 1 + starts]).pow(2).mean(-1).mean() for k in range(3)
    ]
    expected = (per_k[0] + 0.5 * per_k[1] + 0.25 * per_k[2]) / 1.75
    assert parts["z_loss"] == pytest.approx(float(expected), rel=1e-5)


def test_curriculum_starts_at_one_step_and_grows():
    batch = _batch(t_len=6)
    torch.manual_seed(0)
    single = ResidualMLP(3, 2, 16, mode="single")
    torch.manual_seed(0)
    cur = ResidualMLP(3, 2, 16, mode="curriculum", rollout_steps=4, curriculum_epochs=1)
    cur.epoch = 0
    assert cur.loss(batch)[1]["z_loss"] == pytest.approx(single.loss(batch)[1]["z_loss"])
    cur.epoch = 3  # rollouts of 4 steps now
    assert cur.loss(batch)[1]["z_loss"] != pytest.approx(single.loss(batch)[1]["z_loss"])


def test_teacher_forcing_fed_the_truth_always_equals_one_step_errors_per_window():
    batch = _batch(t_len=4)
    torch.manual_seed(1)
    tf = ResidualMLP(3, 2, 16, mode="teacher_forcing", rollout_steps=2, tf_mix=1.0)
    torch.manual_seed(1)
    single = ResidualMLP(3, 2, 16, mode="single")
    # with the truth fed at every step each rollout step is a one-step prediction, so the
    # loss is the mean one-step error over the two shifted windows
    z, a = batch.z, batch.actions
    errs = []
    for k in range(2):
        inp = z[:, k : k + 3]
        nxt, _, _ = single.transition(inp.reshape(-1, 3), a[:, k : k + 3].reshape(-1, 2))
        pred = nxt.view_as(inp)
        errs.append((pred - z[:, k + 1 : k + 4]).pow(2).mean(-1).mean())
    assert tf.loss(batch)[1]["z_loss"] == pytest.approx(float(sum(errs).detach() / 2), rel=1e-5)


@pytest.mark.parametrize("kind", ["residual_mlp", "latent_mlp", "mdn_rnn"])
def test_ensemble_of_any_memory_reports_disagreement_and_averages_members(kind):
    z, a = torch.randn(4, 3), torch.eye(2)[[0, 1, 0, 1]]
    one = build_memory(kind, {"latent_dim": 3, "action_dim": 2, "hidden_dim": 16})
    assert one.uncertainty(one.step(z, a, one.initial(4))[0]) is None
    three = build_memory(kind, {"latent_dim": 3, "action_dim": 2, "hidden_dim": 16, "ensemble": 3})
    assert isinstance(three, Ensemble)
    out, _state = three.step(z, a, three.initial(4))
    points = [m.sample_next(m.step(z, a, m.initial(4))[0], 0.0) for m in three.members]
    torch.testing.assert_close(three.sample_next(out, 0.0), torch.stack(points).mean(0))
    spread = torch.stack(points).std(0, unbiased=False).mean(-1)
    torch.testing.assert_close(three.uncertainty(out), spread)
    assert (spread > 0).all()
    # at tau > 0 each row is one member's draw (deterministic members: their point)
    drawn = three.sample_next(out, 1.0, torch.Generator().manual_seed(0))
    if kind != "mdn_rnn":
        assert all(any(torch.equal(drawn[i], p[i]) for p in points) for i in range(4))
    nxt = three.sample_next(out, 0.0)
    rewards = [m.reward_done(m.step(z, a, m.initial(4))[0], nxt)[0] for m in three.members]
    torch.testing.assert_close(three.reward_done(out, nxt)[0], torch.stack(rewards).mean(0))
    # the ensemble's loss is the members' mean loss
    batch = _batch()
    losses = [float(m.loss(batch)[0].detach()) for m in three.members]
    assert float(three.loss(batch)[0]) == pytest.approx(sum(losses) / 3, rel=1e-5)


def test_identity_vision_and_residual_memory_end_to_end_with_early_stopping(tmp_path, capsys):
    run_dir = tmp_path / "res"
    sets = [
        "vision.kind=identity",
        "memory.kind=residual_mlp",
        "memory.train_mode=curriculum",
        "memory.ensemble=2",
        "memory.epochs=50",
        "memory.patience=1",
        "memory.lr=1e-12",  # nothing improves after the first epoch: early stopping ends it
        "collect.episodes=12",
        "collect.val_fraction=0.4",
    ]
    assert train_debug(run_dir, sets) == 0
    last = torch.load(run_dir / "checkpoints/memory/last.pt", weights_only=True)
    assert last["progress"]["complete"] and last["progress"]["epoch"] < 50
    assert main(["diagnose", "--run-dir", str(run_dir), "--horizon", "3", "--quiet"]) == 0
    result = json.loads((run_dir / "diagnostics.json").read_text())
    # identity V: the latent is the normalised state, so reconstruction is exact
    assert result["reconstruction_mse"] == pytest.approx(0.0, abs=1e-8)
    assert all(u > 0 for u in result["uncertainty"])  # two members disagree
    # re-running the finished V stage leaves it alone: M's record of V's hash stays valid
    before = (run_dir / "checkpoints/vision/best.pt").read_bytes()
    assert main(["train-vision", "--run-dir", str(run_dir), "--quiet", "--resume"]) == 0
    assert (run_dir / "checkpoints/vision/best.pt").read_bytes() == before
    assert main(["diagnose", "--run-dir", str(run_dir), "--horizon", "3", "--quiet"]) == 0


def test_untrained_sections_may_change_on_an_existing_run(tmp_path, capsys):
    run_dir = tmp_path / "c"
    base = ["--run-dir", str(run_dir), "--quiet"]
    assert main(["collect", "--env", "CartPole-v1", "--preset", "debug", *base]) == 0
    # no M yet: its kind and training mode may still be chosen
    sets = ["--set", "memory.kind=residual_mlp", "--set", "memory.train_mode=multistep"]
    assert main(["train-vision", *base]) == 0
    assert main(["train-memory", *base, *sets]) == 0
    # V is trained now: changing what it depends on is refused
    assert main(["train-memory", *base, "--set", "vision.latent_dim=3"]) == 2
    assert "different vision.latent_dim" in capsys.readouterr().err


def test_validation_uses_one_fixed_objective():
    """Regression (bug 3): validation losses were computed under each epoch's schedule (beta
    annealing, curriculum length, teacher forcing drawing from the global RNG), so the best
    checkpoint and early stopping compared different objectives."""
    import numpy as np

    from worldmodels.config import Config
    from worldmodels.training.supervised import Stage, _mean_val
    from worldmodels.training.vision import beta_at

    cfg = Config()
    cfg.vision.beta, cfg.vision.beta_anneal_epochs = 4.0, 10
    assert beta_at(cfg, "conv_vae", 0) == 0.4 and beta_at(cfg, "conv_vae", None) == 4.0
    model = ResidualMLP(3, 2, 16, mode="teacher_forcing", rollout_steps=3, tf_mix=0.5)
    model.set_epoch(None)
    assert model._rollout_steps() == (3, 0.0)  # full length, open loop
    curriculum = ResidualMLP(3, 2, 16, mode="curriculum", rollout_steps=4, curriculum_epochs=1)
    curriculum.set_epoch(None)
    assert curriculum._rollout_steps() == (4, 0.0)
    seen = []

    def loss(m, batch, epoch):
        seen.append(epoch)
        m.set_epoch(epoch)
        return m.loss(batch)

    batch = _batch()
    stage = Stage(
        "memory",
        model,
        "residual_mlp",
        {},
        1,
        1e-3,
        1.0,
        lambda rng: iter([]),
        lambda: iter([batch]),
        loss,
        lambda b: 1,
    )
    rng_before = torch.get_rng_state()
    first = _mean_val(stage, epoch=0)
    assert _mean_val(stage, epoch=7) == first and seen == [None, None]
    assert torch.equal(torch.get_rng_state(), rng_before)  # no random teacher forcing
    assert np.isfinite(first)
