import math

import torch

from worldmodels.models.memory.mdn import mdn_mean, mdn_nll, mdn_sample


def test_nll_matches_hand_computed_two_component_mixture():
    # pi = softmax([0, ln 3]) = [0.25, 0.75]; components N(0, 1) and N(2, e^{ln 0.5}=0.5)
    logit_pi = torch.tensor([[0.0, math.log(3.0)]])
    mu = torch.tensor([[0.0, 2.0]])
    log_sigma = torch.tensor([[0.0, math.log(0.5)]])
    x = torch.tensor([1.0])
    p1 = 1 / math.sqrt(2 * math.pi) * math.exp(-0.5)
    p2 = 1 / (0.5 * math.sqrt(2 * math.pi)) * math.exp(-0.5 * (1.0 / 0.5) ** 2)
    expected = -math.log(0.25 * p1 + 0.75 * p2)
    got = mdn_nll(logit_pi, mu, log_sigma, x)
    assert got.shape == (1,)
    assert abs(float(got) - expected) < 1e-6
    assert abs(expected - 1.9556) < 1e-3  # 0.25*0.24197 + 0.75*0.10798 = 0.14148


def test_nll_single_gaussian_reduces_to_normal_logpdf():
    x = torch.tensor([0.3, -1.2])
    out = mdn_nll(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 1), x)
    expected = 0.5 * x**2 + 0.5 * math.log(2 * math.pi)
    assert torch.allclose(out, expected, atol=1e-6)


def test_nll_is_finite_for_extreme_parameters():
    logit_pi = torch.tensor([[1e4, -1e4, 0.0]])
    mu = torch.tensor([[1e3, -1e3, 0.0]])
    log_sigma = torch.tensor([[-50.0, 50.0, -50.0]])
    out = mdn_nll(logit_pi, mu, log_sigma, torch.tensor([5.0]))
    assert torch.isfinite(out).all()
    logit_pi.requires_grad_(True)
    mdn_nll(logit_pi, mu, log_sigma, torch.tensor([5.0])).sum().backward()
    assert torch.isfinite(logit_pi.grad).all()


def test_low_temperature_samples_the_dominant_component_mean():
    gen = torch.Generator().manual_seed(0)
    logit_pi = torch.tensor([[[3.0, 0.0]]]).expand(1000, 1, 2)
    mu = torch.tensor([[[1.0, -4.0]]]).expand(1000, 1, 2)
    log_sigma = torch.full((1000, 1, 2), math.log(0.1))
    cold = mdn_sample(logit_pi, mu, log_sigma, temperature=0.01, generator=gen)
    assert abs(float(cold.mean()) - 1.0) < 0.01
    warm = mdn_sample(logit_pi, mu, log_sigma, temperature=1.0, generator=gen)
    # with tau = 1 about 1/(1+e^3) = 4.7% of draws come from the -4 component
    frac = float((warm < -2).float().mean())
    assert 0.025 < frac < 0.075
    mean = mdn_mean(logit_pi[:1], mu[:1])
    assert abs(float(mean) - (0.9526 * 1.0 + 0.0474 * -4.0)) < 1e-3
