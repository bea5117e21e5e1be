"""Seed 004's latent model trained in one loss: the loss by hand, where its gradients go, a tiny
run that learns, and the CLI stage that exports V and M for everything downstream."""

import json

import pytest
import torch
import torch.nn.functional as F

from worldmodels.cli import main
from worldmodels.models.memory.base import MemoryBatch
from worldmodels.models.memory.latent_mlp import LatentMLP
from worldmodels.models.vision.mlp_ae import MlpAE
from worldmodels.runs import RunDir, file_sha256
from worldmodels.training.joint import JointWorld


def _world(seed=0):
    torch.manual_seed(seed)
    return JointWorld(MlpAE(4, latent_dim=6, hidden_dims=[16, 16]), LatentMLP(6, 2, 16))


def _batch(b=3, t=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return MemoryBatch(
        z=torch.randn(b, t + 1, 4, generator=g),  # raw observations
        actions=F.one_hot(torch.randint(2, (b, t), generator=g), 2).float(),
        rewards=torch.randn(b, t, generator=g),
        dones=(torch.rand(b, t, generator=g) < 0.2).float(),
        mask=torch.ones(b, t),
    )


def _by_hand(world, batch):
    """Seed 004's train_world_model: recon + dynamics (target detached) + reward + done."""
    v, m = world.vision, world.memory
    x = v.preprocess(batch.z.reshape(-1, 4))
    recon = F.mse_loss(v.decode(v.encoder(x)), x)
    z = v.encoder(x).view(3, 6, 6)
    nxt = m.dynamics(torch.cat([z[:, :-1], batch.actions], -1))
    dynamics = F.mse_loss(nxt, z[:, 1:].detach())
    reward = F.mse_loss(m.reward_head(nxt).squeeze(-1), batch.rewards)
    done = F.binary_cross_entropy_with_logits(m.done_head(nxt).squeeze(-1), batch.dones)
    return recon + dynamics + reward + done


def test_joint_loss_is_seed_004s_four_terms_and_its_gradients_match():
    world, batch = _world(), _batch()
    total, _parts = world.loss(
        batch, beta=0.0, kl_tolerance=0.0, reward_weight=1.0, done_weight=1.0, epoch=0
    )
    expected = _by_hand(world, batch)
    assert float(total.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    grads = torch.autograd.grad(total, list(world.parameters()), allow_unused=True)
    ref = torch.autograd.grad(expected, list(world.parameters()), allow_unused=True)
    for g, r in zip(grads, ref, strict=True):
        if r is None:
            assert g is None or torch.all(g == 0)
        else:
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
    # the encoder learns from M's loss through M's inputs (not only from reconstruction)
    m_only = world.memory.loss(
        batch._replace(z=world.vision.encode(batch.z.reshape(-1, 4))[0].view(3, 6, 6))
    )[0]
    enc = next(world.vision.encoder.parameters())
    assert torch.autograd.grad(m_only, enc)[0].abs().sum() > 0


def test_joint_training_learns_linear_dynamics():
    world = _world(1)
    g = torch.Generator().manual_seed(3)
    a = torch.randint(2, (64, 8), generator=g)
    obs = torch.zeros(64, 9, 4)
    obs[:, 0] = torch.randn(64, 4, generator=g)
    for t in range(8):  # o' = 0.9 o + action-dependent push; reward = first coordinate
        push = torch.where(a[:, t : t + 1] == 1, 0.5, -0.5)
        obs[:, t + 1] = 0.9 * obs[:, t] + push
    batch = MemoryBatch(
        obs, F.one_hot(a, 2).float(), obs[:, 1:, 0], torch.zeros(64, 8), torch.ones(64, 8)
    )
    opt = torch.optim.Adam(world.parameters(), lr=3e-3)

    def loss():
        return world.loss(batch, 0.0, 0.0, 1.0, 1.0, 0)

    first = float(loss()[0].detach())
    for _ in range(300):
        value, _ = loss()
        opt.zero_grad()
        value.backward()
        opt.step()
    _, parts = loss()
    assert parts["loss"] < first / 10
    assert parts["loss"] < first / 20
    assert parts["memory_one_step_mse"] < 0.02 and parts["memory_reward_loss"] < 0.02


def test_latent_mlp_preset_trains_jointly_and_exports_v_and_m(tmp_path, capsys):
    run_dir = tmp_path / "joint"
    argv = [
        *f"train --env CartPole-v1 --run-dir {run_dir} --preset debug --preset latent-mlp".split(),
        "--quiet",
        "--set",
        "collect.episodes=10",
        "--set",
        "memory.epochs=2",
        "--set",
        "memory.ensemble=2",
        "--set",
        "controller.generations=1",
    ]
    assert main(argv) == 0
    ck = run_dir / "checkpoints"
    world = torch.load(ck / "world/best.pt", weights_only=True)
    vision = torch.load(ck / "vision/best.pt", weights_only=True)
    memory = torch.load(ck / "memory/best.pt", weights_only=True)
    assert vision["model"]["name"] == "mlp_ae" and memory["model"]["name"] == "latent_mlp"
    for key, value in vision["model"]["state_dict"].items():  # V as trained jointly
        assert torch.equal(value, world["model"]["state_dict"][f"vision.{key}"])
    assert memory["vision_sha256"] == RunDir(run_dir).digest("vision/best")
    before = file_sha256(ck / "vision/best.pt")
    assert main(argv) == 0  # a finished run: nothing is re-exported
    assert file_sha256(ck / "vision/best.pt") == before
    assert main(["diagnose", "--run-dir", str(run_dir), "--horizon", "3", "--quiet"]) == 0
    result = json.loads((run_dir / "diagnostics.json").read_text())
    assert all(u > 0 for u in result["uncertainty"])  # two latent models disagree
    assert result["reconstruction_mse"] > 0
