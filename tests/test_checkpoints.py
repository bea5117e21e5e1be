import torch

from worldmodels.controllers.linear import FlatController
from worldmodels.envs import EnvSpec
from worldmodels.models.memory import build_memory
from worldmodels.models.vision import build_vision
from worldmodels.runs import RunDir, load_checkpoint, model_payload

PIXELS = EnvSpec("P", "pixels", (64, 64, 3), "discrete", 3, (0.0,), (2.0,), None, None)


def _round_trip(tmp_path, name, kwargs, module, registry_build):
    run = RunDir(tmp_path)
    run.save(
        "m/best", {"model": model_payload(name, kwargs, module), "spec": PIXELS.shape_signature()}
    )
    payload = load_checkpoint(run.ckpt_path("m/best"))  # weights_only=True inside
    clone = registry_build(payload["model"]["name"], payload["model"]["kwargs"])
    clone.load_state_dict(payload["model"]["state_dict"])
    return clone.eval()


def test_conv_vae_save_load_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    model = build_vision("conv_vae", {"latent_dim": 8, "batch_norm": True})
    model.train()
    model.encode(torch.randint(0, 255, (4, 64, 64, 3), dtype=torch.uint8))  # move BN stats
    model.eval()
    clone = _round_trip(
        tmp_path, "conv_vae", {"latent_dim": 8, "batch_norm": True}, model, build_vision
    )
    x = torch.randint(0, 255, (5, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(model.encode(x)[0], clone.encode(x)[0])
        z = torch.randn(5, 8)
        assert torch.equal(model.decode(z), clone.decode(z))


def test_mlp_vae_keeps_its_normaliser(tmp_path):
    torch.manual_seed(0)
    kwargs = {"obs_dim": 4, "latent_dim": 3, "hidden_dims": [8]}
    model = build_vision("mlp_vae", kwargs)
    model.set_normaliser(torch.tensor([1.0, 2, 3, 4]), torch.tensor([0.5, 1, 2, 3]))
    clone = _round_trip(tmp_path, "mlp_vae", kwargs, model.eval(), build_vision)
    x = torch.randn(6, 4)
    assert torch.equal(model.encode(x)[0], clone.encode(x)[0])
    assert torch.equal(clone.obs_std, torch.tensor([0.5, 1, 2, 3]))


def test_mdn_rnn_and_controller_save_load_bit_identical(tmp_path):
    torch.manual_seed(0)
    kwargs = {"latent_dim": 4, "action_dim": 3, "hidden_dim": 16, "num_mixtures": 2}
    model = build_memory("mdn_rnn", kwargs).eval()
    clone = _round_trip(tmp_path / "m", "mdn_rnn", kwargs, model, build_memory)
    z, a = torch.randn(2, 5, 4), torch.randn(2, 5, 3)
    with torch.no_grad():
        for x, y in zip(model(z, a)[0], clone(z, a)[0], strict=True):
            assert torch.equal(x, y)
    ctrl = FlatController(20, 3, [5])
    ctrl.set_flat(torch.randn(ctrl.shape.num_params))
    clone_c = _round_trip(
        tmp_path / "c",
        "mlp",
        {"in_dim": 20, "out_dim": 3, "hidden": [5]},
        ctrl,
        lambda _n, kw: FlatController(**kw),
    )
    f = torch.randn(7, 20)
    assert torch.equal(ctrl(f), clone_c(f))


def test_checkpoint_is_loaded_without_executing_pickles(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, ("open('pwned', 'w').write('x')",))

    path = tmp_path / "evil.pt"
    path.write_bytes(b"")
    torch.save({"format": 1, "x": Evil()}, path, pickle_module=pickle)
    import pytest

    from worldmodels.errors import UserError

    with pytest.raises(UserError, match="cannot load checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()
