"""GAE and TD(lambda) against sequences computed by hand (gamma 0.9, lambda 0.8)."""

import numpy as np
import pytest
import torch

from worldmodels.rl.returns import gae, td_lambda

G, L = 0.9, 0.8


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_gae_no_episode_end_bootstraps_last_step():
    # delta = [1 + .9*.5 - .5, same, 1 + .9*2 - .5] = [.95, .95, 2.3]
    adv, ret = gae(
        t([1, 1, 1]), t([0.5, 0.5, 0.5]), t([0.5, 0.5, 2.0]), t([0, 0, 0]), t([0, 0, 0]), G, L
    )
    expected = [0.95 + 0.72 * (0.95 + 0.72 * 2.3), 0.95 + 0.72 * 2.3, 2.3]
    assert adv[0].tolist() == pytest.approx(expected)
    assert ret[0].tolist() == pytest.approx([a + 0.5 for a in expected])


def test_gae_termination_drops_bootstrap_and_cuts_trace():
    # t=1 terminates: its next value (9.0) is ignored and A_0 does not see A_2
    adv, _ = gae(
        t([1, 1, 1]), t([0.5, 0.5, 0.5]), t([0.5, 9.0, 2.0]), t([0, 1, 0]), t([0, 0, 0]), G, L
    )
    assert adv[0].tolist() == pytest.approx([0.95 + 0.72 * 0.5, 0.5, 2.3])


def test_gae_truncation_bootstraps_from_final_observation_and_cuts_trace():
    # t=1 is cut by a time limit: bootstrap with V(final obs) = 3.0, no trace into t=2
    adv, _ = gae(
        t([1, 1, 1]), t([0.5, 0.5, 0.5]), t([0.5, 3.0, 2.0]), t([0, 0, 0]), t([0, 1, 0]), G, L
    )
    assert adv[0].tolist() == pytest.approx([0.95 + 0.72 * 3.2, 3.2, 2.3])


def test_batch_rows_are_independent():
    r = t([1, 1, 1], [0, 0, 5])
    v = t([0.5, 0.5, 0.5], [0, 0, 0])
    nv = t([0.5, 0.5, 2.0], [0, 0, 0])
    z = t([0, 0, 0], [0, 0, 0])
    adv, _ = gae(r, v, nv, z, z, G, L)
    single, _ = gae(r[1:], v[1:], nv[1:], z[1:], z[1:], G, L)
    assert adv[1].tolist() == pytest.approx(single[0].tolist())
    assert adv[1].tolist() == pytest.approx([0.72**2 * 5, 0.72 * 5, 5.0])


def test_td_lambda_by_hand():
    # G_2 = 1 + .9*2 = 2.8; G_1 = 1 + .9*(.2*.5 + .8*2.8) = 3.106; G_0 = 1 + .9*(.1 + .8*3.106)
    ret = td_lambda(t([1, 1, 1]), t([0.5, 0.5, 2.0]), t([0, 0, 0]), t([0, 0, 0]), G, L)
    assert ret[0].tolist() == pytest.approx([1 + 0.9 * (0.1 + 0.8 * 3.106), 3.106, 2.8])
    term = td_lambda(t([1, 1, 1]), t([0.5, 7.0, 2.0]), t([0, 1, 0]), t([0, 0, 0]), G, L)
    assert term[0].tolist() == pytest.approx([1 + 0.9 * (0.1 + 0.8 * 1.0), 1.0, 2.8])
    trunc = td_lambda(t([1, 1, 1]), t([0.5, 3.0, 2.0]), t([0, 0, 0]), t([0, 1, 0]), G, L)
    assert trunc[0].tolist() == pytest.approx([1 + 0.9 * (0.1 + 0.8 * 3.7), 3.7, 2.8])
    # a continue probability of 0.5 at step 1 halves its discount and nothing else:
    # G_1 = 1 + .9 * .5 * (.2 * .5 + .8 * 2.8) = 2.053 (not a half-cut of the lambda chain)
    soft = td_lambda(t([1, 1, 1]), t([0.5, 0.5, 2.0]), t([0, 0.5, 0]), t([0, 0, 0]), G, L)
    g1 = 1 + 0.9 * 0.5 * (0.1 + 0.8 * 2.8)
    assert soft[0].tolist() == pytest.approx([1 + 0.9 * (0.1 + 0.8 * g1), g1, 2.8])


def test_td_lambda_passes_gradients_to_rewards_values_and_continues_by_hand():
    """Dynamics backpropagation differentiates the return: G_0 = r_0 + g((1-l) V'_0 + l(r_1 +
    g((1-l) V'_1 + l(r_2 + g V'_2)))), so dG_0/dr = (1, gl, (gl)^2) and dG_0/dV' = (g(1-l),
    g^2 l(1-l), g^3 l^2); a continue probability c_1 at step 1 multiplies everything after."""
    r = t([1.0, 1.0, 1.0]).requires_grad_()
    v = t([0.5, 0.5, 2.0]).requires_grad_()
    c = t([0.0, 0.0, 0.0]).requires_grad_()  # terminated = 1 - continue
    td_lambda(r, v, c, t([0, 0, 0]), G, L)[0, 0].backward()
    gl = G * L
    assert r.grad[0].tolist() == pytest.approx([1, gl, gl**2])
    assert v.grad[0].tolist() == pytest.approx([G * (1 - L), G * gl * (1 - L), G * gl**2])
    g1 = 1 + G * (0.2 * 0.5 + 0.8 * 2.8)  # G_1 by hand (test_td_lambda_by_hand: 3.106)
    assert c.grad[0, 1].item() == pytest.approx(-G * L * (g1 - 1))  # dG_0/dterm_1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_td_lambda_equals_gae_returns_when_values_are_consistent(seed):
    g = torch.Generator().manual_seed(seed)
    b, n = 4, 12
    rewards = torch.randn(b, n, generator=g, dtype=torch.float64)
    values = torch.randn(b, n, generator=g, dtype=torch.float64)
    final = torch.randn(b, n, generator=g, dtype=torch.float64)
    terminated = torch.rand(b, n, generator=g) < 0.15
    truncated = (torch.rand(b, n, generator=g) < 0.15) & ~terminated
    done = terminated | truncated
    # inside an episode s'_t is s_{t+1}; at an episode end it is the final observation
    nxt = torch.cat([values[:, 1:], final[:, -1:]], 1)
    next_values = torch.where(done, final, nxt)
    _, ret = gae(rewards, values, next_values, terminated, truncated, G, L)
    assert torch.allclose(td_lambda(rewards, next_values, terminated, truncated, G, L), ret)


def test_shape_contract_is_enforced():
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        gae(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        td_lambda(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(2, 3))


def test_returns_to_go_and_monte_carlo_targets_by_hand():
    """r = 1, 2, 3 at gamma 0.5: after a terminal G = 2.75, 3.5, 3, 0; cut and bootstrapped
    with 4: 3.25, 4.5, 5, 4; cut with no bootstrap known: NaN. The targets take the Monte Carlo
    return where it is known (mc), the larger of it and the λ-return (max), or neither."""
    from worldmodels.data.replay import returns_to_go
    from worldmodels.rl.returns import mc_or_lambda

    r = np.array([1.0, 2.0, 3.0], np.float32)
    assert returns_to_go(r, True, None, 0.5).tolist() == [2.75, 3.5, 3.0, 0.0]
    assert returns_to_go(r, False, 4.0, 0.5).tolist() == [3.25, 4.5, 5.0, 4.0]
    assert np.isnan(returns_to_go(r, False, None, 0.5)).all()
    lam = torch.tensor([[1.0, 5.0, 2.0]])
    mc = torch.tensor([[3.0, 4.0, float("nan")]])
    assert mc_or_lambda(lam, mc, "mc").tolist() == [[3.0, 4.0, 2.0]]
    assert mc_or_lambda(lam, mc, "max").tolist() == [[3.0, 5.0, 2.0]]
    assert mc_or_lambda(lam, mc, "lambda").tolist() == [[1.0, 5.0, 2.0]]
