"""Seed 000's models: the VQ-VAE vision and the temporal transformer memory."""

import json

import pytest
import torch
from cli_runs import train_debug

from worldmodels.cli import main
from worldmodels.models.memory import build_memory
from worldmodels.models.memory.ensemble import Ensemble
from worldmodels.models.memory.transformer import TemporalTransformer
from worldmodels.models.vision import build_vision
from worldmodels.models.vision.vq_vae import VQVAE, VectorQuantizer
from worldmodels.runs import RunDir, load_checkpoint, model_payload


def test_quantiser_snaps_to_nearest_code_with_straight_through_gradient_and_hand_losses():
    vq = VectorQuantizer(3, 2, dead_threshold=0.0)
    vq.codebook.data = torch.tensor([[0.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    z_e = torch.tensor([[0.0, 0.0], [1.0, 1.5]], requires_grad=True)
    z_q, idx = vq(z_e)
    assert idx.tolist() == [0, 1]
    torch.testing.assert_close(z_q, torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
    (z_q * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    # straight-through: d z_q / d z_e is the identity
    torch.testing.assert_close(z_e.grad, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    codebook, commit = vq.losses(z_e, idx)
    # squared errors 0, 1, 0, 0.25 over 4 numbers
    assert float(codebook.detach()) == pytest.approx(1.25 / 4)
    assert float(commit.detach()) == pytest.approx(1.25 / 4)
    # the codebook loss moves only the codes, the commitment loss only the encoder
    codebook.backward()
    assert vq.codebook.grad is not None and vq.codebook.grad[2].abs().sum() == 0
    assert vq.codebook.grad[0].abs().sum() > 0


def test_vq_vae_loss_is_recon_plus_codebook_plus_commitment_and_perplexity_counts_codes():
    torch.manual_seed(0)
    model = VQVAE(obs_dim=3, latent_dim=4, hidden_dims=[8], num_codes=4, code_dim=2)
    model.commitment = 0.5
    model.eval()  # no usage update: the loss is a pure function
    obs = torch.randn(6, 3)
    loss, parts = model.loss(obs, beta=9.0, kl_tolerance=9.0)  # beta / KL do not apply
    expected = parts["recon_loss"] + parts["codebook_loss"] + 0.5 * parts["commitment_loss"]
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    x = model.preprocess(obs)
    z, _ = model.posterior(x)
    assert float(parts["recon_loss"]) == pytest.approx(
        float((model.decode(z) - x).pow(2).mean()), rel=1e-6
    )
    # perplexity: exp(entropy) of the code histogram, K when every code is used equally
    idx = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    freq = VectorQuantizer.histogram(idx, 4)
    assert float(torch.exp(-(freq * freq.log()).sum())) == pytest.approx(4.0)
    assert 1.0 <= parts["perplexity"] <= 4.0 and 0 < parts["code_usage"] <= 1.0


def test_dead_codes_are_reset_to_encoder_outputs_in_training_only():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 2, dead_threshold=0.5)
    vq.codebook.data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [100.0, 100.0], [-100.0, 50.0]])
    z_e = torch.tensor([[0.1, 0.0], [0.9, 0.1], [0.0, 0.2], [1.1, 0.0]])
    resets = 0
    for _ in range(10):
        _, idx = vq(z_e)
        resets += vq.update_usage(idx, z_e)
    # codes 2 and 3 were never chosen: once their usage fell below half of uniform they were
    # moved onto encoder outputs, where they can be chosen (and trained) again
    assert resets >= 2
    for k in (2, 3):
        assert any(torch.equal(vq.codebook.data[k], row) for row in z_e)
    model = VQVAE(obs_dim=2, latent_dim=2, hidden_dims=[4], num_codes=4, code_dim=2)
    model.quantizer.usage.zero_()
    before = model.quantizer.codebook.detach().clone()
    model.eval()
    model.loss(torch.randn(5, 2), 0.0, 0.0)
    assert torch.equal(before, model.quantizer.codebook)  # evaluation changes nothing


def test_vq_vae_learns_to_reconstruct_and_uses_many_codes():
    torch.manual_seed(0)
    obs = torch.randn(512, 4) @ torch.randn(4, 4)
    model = VQVAE(obs_dim=4, latent_dim=8, hidden_dims=[32], num_codes=16, code_dim=2)
    model.set_normaliser(obs.mean(0), obs.std(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(model.loss(obs, 0.0, 0.0)[1]["recon_loss"])
    for _i in range(300):
        batch = obs[torch.randint(0, 512, (64,))]
        loss, parts = model.loss(batch, 0.0, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    _, parts = model.loss(obs, 0.0, 0.0)
    assert parts["recon_loss"] < 0.3 * first
    assert parts["perplexity"] > 4.0


def test_vq_vae_pixels_save_load_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    kwargs = {"num_codes": 8, "code_dim": 2}
    model = build_vision("vq_vae", kwargs)
    assert model.latent_dim == 32
    x = torch.randint(0, 255, (3, 64, 64, 3), dtype=torch.uint8)
    model.train()
    model.loss(x, 0.0, 0.0)  # moves the usage buffer
    model.eval()
    run = RunDir(tmp_path)
    run.save("v/best", {"model": model_payload("vq_vae", kwargs, model)})
    payload = load_checkpoint(run.ckpt_path("v/best"))
    clone = build_vision("vq_vae", payload["model"]["kwargs"])
    clone.load_state_dict(payload["model"]["state_dict"])
    with torch.no_grad():
        z = model.encode(x)[0]
        assert torch.equal(z, clone.encode(x)[0])
        assert torch.equal(model.decode(z), clone.decode(z))
    assert torch.equal(model.quantizer.usage, clone.quantizer.usage)


@pytest.mark.parametrize("max_len", [1, 4, 40])
def test_transformer_step_by_step_equals_the_full_sequence_forward(max_len):
    torch.manual_seed(0)
    m = TemporalTransformer(5, 2, hidden_dim=16, heads=2, layers=2, max_len=max_len).eval()
    z, a = torch.randn(3, 11, 5), torch.randn(3, 11, 2)
    with torch.no_grad():
        full, full_state = m(z, a)
        state = m.initial(3)
        sizes = [s.shape for s in state]
        steps = []
        for t in range(11):
            out, state = m.step(z[:, t], a[:, t], state)
            steps.append(out)
            assert [s.shape for s in state] == sizes  # the history buffer never grows
    for field in ("mu", "log_sigma", "logit_pi", "reward", "done_logit", "hidden"):
        step_wise = torch.cat([getattr(o, field) for o in steps], dim=1)
        torch.testing.assert_close(step_wise, getattr(full, field), atol=1e-5, rtol=1e-5)
    for x, y in zip(state, full_state, strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
    # continuing a sequence from a state equals the forward over the whole sequence
    with torch.no_grad():
        _head, mid = m(z[:, :6], a[:, :6])
        tail, _ = m(z[:, 6:], a[:, 6:], mid)
    torch.testing.assert_close(tail.mu, full.mu[:, 6:], atol=1e-5, rtol=1e-5)


def test_transformer_attends_only_within_its_window():
    torch.manual_seed(0)
    m = TemporalTransformer(3, 1, hidden_dim=8, heads=2, layers=1, max_len=3).eval()
    z, a = torch.randn(1, 8, 3), torch.randn(1, 8, 1)
    z2 = z.clone()
    z2[:, 0] += 10.0  # with one layer and a window of 3, step 0 reaches outputs 0..2 only
    with torch.no_grad():
        x, _ = m(z, a)
        y, _ = m(z2, a)
    assert not torch.allclose(x.mu[:, 2], y.mu[:, 2])
    torch.testing.assert_close(x.mu[:, 3:], y.mu[:, 3:])


def test_gradients_reach_the_vision_encoder_through_the_transformer_step():
    torch.manual_seed(0)
    vision = build_vision("vq_vae", {"num_codes": 8, "code_dim": 2})
    memory = build_memory(
        "transformer",
        {"latent_dim": vision.latent_dim, "action_dim": 3, "hidden_dim": 16, "heads": 2},
    )
    frames = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    state = memory.initial(2)
    with torch.no_grad():  # history from earlier steps, stored without gradient
        z0, _ = vision.encode(frames)
        _, state = memory.step(z0, torch.zeros(2, 3), state)
    z, _ = vision.encode(frames)  # the current step carries gradient
    a = torch.eye(3)[:2].requires_grad_(True)
    out, _ = memory.step(z, a, state)
    loss = memory.step_loss(out, torch.randn(2, vision.latent_dim), torch.ones(2), torch.zeros(2))
    loss.backward()
    first_conv = vision.encoder[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_transformer_ensemble_and_save_load(tmp_path):
    kw = {"latent_dim": 3, "action_dim": 2, "hidden_dim": 8, "heads": 2, "max_len": 4}
    torch.manual_seed(0)
    ens = build_memory("transformer", {**kw, "ensemble": 2})
    assert isinstance(ens, Ensemble)
    z, a = torch.randn(4, 3), torch.randn(4, 2)
    out, _state = ens.step(z, a, ens.initial(4))
    assert ens.uncertainty(out).shape == (4,)
    model = build_memory("transformer", kw).eval()
    run = RunDir(tmp_path)
    run.save("m/best", {"model": model_payload("transformer", kw, model)})
    payload = load_checkpoint(run.ckpt_path("m/best"))
    clone = build_memory("transformer", payload["model"]["kwargs"]).eval()
    clone.load_state_dict(payload["model"]["state_dict"])
    zs, acts = torch.randn(2, 6, 3), torch.randn(2, 6, 2)
    with torch.no_grad():
        for x, y in zip(model(zs, acts)[0], clone(zs, acts)[0], strict=True):
            assert torch.equal(x, y)


def test_vq_vae_and_transformer_train_end_to_end_from_the_command_line(tmp_path):
    run_dir = tmp_path / "seed000"
    sets = [
        "vision.kind=vq_vae",
        "vision.latent_dim=8",
        "vision.vq_dim=2",
        "memory.kind=transformer",
        "memory.hidden_dim=16",
        "memory.max_len=8",
    ]
    assert train_debug(run_dir, sets) == 0
    last = torch.load(run_dir / "checkpoints/memory/last.pt", weights_only=True)
    assert last["model"]["name"] == "transformer" and last["progress"]["complete"]
    assert main(["diagnose", "--run-dir", str(run_dir), "--horizon", "3", "--quiet"]) == 0


def test_bad_vq_and_transformer_settings_are_refused_in_one_line(tmp_path, capsys):
    base = ["train", "--env", "CartPole-v1", "--preset", "debug", "--quiet"]
    bad = [
        (["vision.kind=vq_vae", "vision.latent_dim=7", "vision.vq_dim=2"], "multiple of"),
        (["memory.kind=transformer", "memory.hidden_dim=10", "memory.attn_heads=4"], "multiple"),
        (["memory.kind=transformer", "memory.max_len=0"], "max_len"),
    ]
    for i, (sets, needle) in enumerate(bad):
        argv = [*base, "--run-dir", str(tmp_path / f"r{i}")]
        assert main(argv + [x for s in sets for x in ("--set", s)]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1


def test_seed000_pretraining_commands_run_as_written(tmp_path, capsys):
    """Seed 000's three commands: pre-train V, pre-train M from it, then A2C with the improved
    controller, each naming its checkpoint file (here: files in one run directory)."""
    d = tmp_path / "checkpoints"
    first = ["train", "--env-name", "CartPole-v1", "--pretrain-vision", "--max-epoch", "2"]
    first += ["--save-path", str(d), "--preset", "debug", "--preset", "enhanced", "--quiet"]
    first += ["--set", "memory.hidden_dim=16", "--set", "memory.max_len=8"]
    first += ["--set", "vision.latent_dim=8", "--set", "vision.vq_dim=2"]
    assert main(first) == 0
    assert "pre-trained vision" in capsys.readouterr().out
    assert not (d / "checkpoints/memory").exists() and not (d / "eval.json").exists()
    second = ["train", "--env-name", "CartPole-v1", "--pretrain-memory", "--max-epoch", "3"]
    second += ["--load-path", str(d / "pretrainedV_CartPole-v1.pt"), "--save-path", str(d)]
    assert main([*second, "--quiet"]) == 0
    memory = torch.load(d / "checkpoints/memory/last.pt", weights_only=True)
    assert memory["model"]["name"] == "transformer" and memory["progress"]["epoch"] == 3
    third = ["train", "--env-name", "CartPole-v1", "--use-improved-controller", "--use-a2c"]
    third += ["--load-path", str(d / "pretrainedVM_CartPole-v1.pt"), "--max-epoch", "2"]
    third += ["--n-steps", "8", "--planning-horizon", "2", "--quiet"]
    assert main(third) == 0
    agent = torch.load(d / "checkpoints/a2c/last.pt", weights_only=True)
    assert agent["progress"]["iteration"] == 2 and agent["progress"]["complete"]
    assert json.loads((d / "eval.json").read_text())["planner"] == "auto"
    capsys.readouterr()
    # two different directories, or --max-epoch where it means nothing: one line, exit 2
    other = ["train", "--run-dir", str(tmp_path / "x"), "--load-path", str(d), "--quiet"]
    mpc = ["train", "--run-dir", str(d), "--method", "mpc", "--max-epoch", "3", "--quiet"]
    for argv, needle in [(other, "differ"), (mpc, "--max-epoch does not apply")]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1
