"""The RSSM world model (``models/rssm.py``) by hand: symlog and two-hot, the KL with free
bits and the uniform mix, the decoder's losses, the loss parts and scales, the CNN codec."""

import math

import pytest
import torch

from worldmodels.models.rssm import DreamerWorldModel, Rssm, TwoHot, symexp, symlog


def test_symlog_and_two_hot_by_hand():
    x = torch.tensor([-100.0, -1.0, 0.0, 0.5, 1000.0])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)
    assert symlog(torch.tensor(math.e - 1)).item() == pytest.approx(1.0)
    th = TwoHot(bins=5, low=-2.0, high=2.0)  # edges -2, -1, 0, 1, 2 (symlog space)
    y = symexp(torch.tensor([0.25, -2.0, 5.0]))  # 0.25 -> 3/4 on bin 0, 1/4 on bin 1
    target = th.target(y)
    assert torch.allclose(target[0], torch.tensor([0, 0, 0.75, 0.25, 0]))
    assert torch.allclose(target[1], torch.tensor([1.0, 0, 0, 0, 0]))
    assert torch.allclose(target[2], torch.tensor([0, 0, 0, 0, 1.0]))  # clipped to the top
    logits = torch.log(target[0].clamp_min(1e-30))
    assert th.mean(logits).item() == pytest.approx(float(symexp(torch.tensor(0.25))), rel=1e-4)
    # cross-entropy against a uniform prediction = log(bins)
    assert th.loss(torch.zeros(5), y[0]).item() == pytest.approx(math.log(5))


def test_rssm_kl_free_bits_and_unimix_by_hand():
    rssm = Rssm(embed_dim=3, action_dim=2, deter=4, groups=2, classes=2, hidden=4, unimix=0.0)
    lhs = torch.log(torch.tensor([[0.5, 0.5, 0.9, 0.1]]))
    rhs = torch.log(torch.tensor([[0.5, 0.5, 0.5, 0.5]]))
    kl = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert rssm.kl(lhs, rhs).item() == pytest.approx(kl, rel=1e-5)
    mixed = Rssm(3, 2, 4, 2, 2, 4, unimix=0.1).probs(torch.tensor([[0.0, 100.0, 0.0, 0.0]]))
    assert torch.allclose(mixed[0, 0], torch.tensor([0.05, 0.95]))
    sample = rssm.sample(torch.zeros(3, 4))
    assert torch.equal(sample.detach().reshape(3, 2, 2).sum(-1), torch.ones(3, 2))  # one-hots


def test_vector_decoder_loss_is_symlog_mse_or_raw_mse_by_hand():
    """A zeroed decoder predicts 0: the loss is sum(symlog(obs)^2), or sum(obs^2) with
    symlog_obs off; the encoder sees symlog(obs) or obs."""
    obs = torch.tensor([[2.4, -0.5, 0.0, 3.0]])
    for flag, squash in ((True, symlog), (False, lambda x: x)):
        wm = DreamerWorldModel((4,), False, 2, 8, 2, 3, 8, 1, bins=11, symlog_obs=flag)
        codec = wm.codec
        for p in codec.decoder[-1].parameters():
            torch.nn.init.zeros_(p)
        feat = torch.zeros(1, wm.feat_dim)
        expected = float((squash(obs) ** 2).sum())
        assert codec.recon_loss(feat, obs).item() == pytest.approx(expected, rel=1e-6)
        assert torch.equal(codec.encode(obs), codec.encoder(squash(obs)))


def test_world_model_loss_parts_and_scales():
    wm = DreamerWorldModel(
        (4,), False, 2, deter=8, groups=2, classes=3, hidden=8, layers=1, bins=11
    )
    batch = {
        "obs": torch.randn(2, 5, 4),
        "action": torch.eye(2)[torch.randint(0, 2, (2, 5))],
        "reward": torch.ones(2, 5),
        "is_first": torch.zeros(2, 5, dtype=torch.bool),
        "is_terminal": torch.zeros(2, 5, dtype=torch.bool),
    }
    out = wm.loss(batch)
    parts = out.parts
    # zero-initialised reward head: a uniform two-hot prediction, loss = log(bins)
    assert parts["rew"].item() == pytest.approx(math.log(11), rel=1e-5)
    assert parts["dyn"].item() >= 1.0 and parts["rep"].item() >= 1.0  # free bits: 1 nat
    total = sum(wm.scales[k] * parts[k] for k in ("dec", "rew", "cont", "dyn", "rep"))
    assert out.total.item() == pytest.approx(total.item(), rel=1e-6)
    assert out.states.h.shape == (2, 5, 8) and out.states.z.shape == (2, 5, 6)
    with pytest.raises(ValueError, match="loss scales"):
        DreamerWorldModel((4,), False, 2, loss_scales={"dec": 1.0})


def test_the_cnn_codec_has_one_stride_2_stage_per_halving_down_to_4x4():
    """DreamerV3's minres 4: 64x64 frames take 4 stages (depth 16 -> 128 channels at 4x4, the
    layers every earlier checkpoint has), 32x32 three, 16x16 two; other sizes are refused."""
    from worldmodels.models.rssm import PixelCodec, pixel_stages

    assert [pixel_stages(n) for n in (8, 16, 32, 64, 128)] == [1, 2, 3, 4, 5]
    for bad in (4, 48, 100):
        with pytest.raises(ValueError, match=f"not {bad}"):
            pixel_stages(bad)
    old = PixelCodec(3, 10, 16, 64).state_dict()
    assert old["encoder.9.weight"].shape == (128, 64, 4, 4) and "encoder.12.weight" not in old
    assert old["decoder.0.weight"].shape == (128, 64, 4, 4)
    assert old["decoder.9.weight"].shape == (16, 3, 4, 4)
    torch.manual_seed(0)
    for size, embed in ((16, 32 * 16), (32, 64 * 16), (64, 128 * 16)):
        codec = PixelCodec(3, 10, 16, size)
        frames = torch.randint(0, 256, (2, 3, size, size, 3), dtype=torch.uint8)
        assert codec.encode(frames).shape == (2, 3, embed) == (2, 3, codec.embed_dim)
        feat = torch.randn(2, 3, 10)
        assert codec.decode(feat).shape == (2, 3, size * size * 3)
        by_hand = ((codec._decode(feat) - codec._pixels(frames)) ** 2).sum((1, 2, 3))
        assert torch.allclose(codec.recon_loss(feat, frames), by_hand.reshape(2, 3))
