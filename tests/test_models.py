import math

import numpy as np
import torch

from worldmodels.controllers.linear import PolicyShape, batched_forward, outputs_to_actions
from worldmodels.envs import EnvSpec
from worldmodels.models.memory.base import MemoryBatch
from worldmodels.models.memory.mdn_rnn import MDNRNN
from worldmodels.models.vision.common import beta_vae_loss, gaussian_kl
from worldmodels.models.vision.conv_vae import ConvVAE
from worldmodels.models.vision.mlp_vae import MlpVAE


def test_kl_and_beta_vae_loss_hand_computed():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    # KL = 0.5 * sum(sigma^2 + mu^2 - 1 - log sigma^2) = 0.5 * (1 + 1 - 1 - 0 + 4 - 1 - ln 4)
    kl = 0.5 * (1.0 + 3.0 - math.log(4.0))
    assert abs(float(gaussian_kl(mu, logvar)) - kl) < 1e-6
    loss, _m = beta_vae_loss(torch.tensor([2.0]), mu, logvar, beta=4.0, kl_tolerance=0.0)
    assert abs(float(loss) - (2.0 + 4.0 * kl)) < 1e-5
    # KL tolerance: floor of 0.5 nats x 2 dims = 1.0 > kl (~1.307)? no: kl is above, unchanged
    loss_tol, _ = beta_vae_loss(torch.tensor([2.0]), mu, logvar, beta=4.0, kl_tolerance=1.0)
    assert abs(float(loss_tol) - (2.0 + 4.0 * 2.0)) < 1e-5  # floor 2.0 nats wins


def _fit(model, data, steps, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        loss, _ = model.loss(data, beta=1.0, kl_tolerance=0.0)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, float(model.loss(data, beta=1.0, kl_tolerance=0.0)[0])


def test_mlp_vae_loss_falls_on_tiny_data():
    torch.manual_seed(0)
    x = torch.randn(64, 4) @ torch.randn(4, 4)
    model = MlpVAE(obs_dim=4, latent_dim=4, hidden_dims=[32])
    model.set_normaliser(x.mean(0), x.std(0))
    first, last = _fit(model, x, 200, 3e-3)
    assert last < 0.5 * first


def test_conv_vae_loss_falls_on_tiny_data():
    torch.manual_seed(0)
    frames = torch.zeros(8, 64, 64, 3, dtype=torch.uint8)
    for i in range(8):  # squares at different places
        frames[i, 8 * i : 8 * i + 12, 10:30] = 255
    model = ConvVAE(latent_dim=8, batch_norm=False)
    first, last = _fit(model, frames, 60, 1e-3)
    assert last < 0.5 * first


def test_mdn_rnn_loss_falls_and_step_matches_sequence():
    torch.manual_seed(0)
    b, t, z, a = 16, 10, 3, 2
    actions = torch.nn.functional.one_hot(torch.randint(0, a, (b, t)), a).float()
    zs = [torch.randn(b, z) * 0.1]
    for k in range(t):  # z_{t+1} = 0.9 z_t + action effect
        zs.append(0.9 * zs[-1] + (actions[:, k, :1] - 0.5))
    batch = MemoryBatch(
        torch.stack(zs, 1), actions, actions[:, :, 0], torch.zeros(b, t), torch.ones(b, t)
    )
    model = MDNRNN(z, a, hidden_dim=32, num_mixtures=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(model.loss(batch)[0])
    for _ in range(150):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(model.loss(batch)[0]) < first - 2.0
    with torch.no_grad():
        full, _ = model(batch.z[:, :-1], actions)
        state = model.initial(b)
        for k in range(t):
            out, state = model.step(batch.z[:, k], actions[:, k], state)
            assert torch.allclose(out.mu[:, 0], full.mu[:, k], atol=1e-5)
            assert torch.allclose(out.reward[:, 0], full.reward[:, k], atol=1e-5)


def test_batched_controller_forward_equals_per_candidate_loop():
    torch.manual_seed(0)
    shape = PolicyShape(5, 3, (4,))
    params = torch.randn(6, shape.num_params)
    feats = torch.randn(6, 7, 5)
    out = batched_forward(shape, params, feats)
    for p in range(6):
        single = batched_forward(shape, params[p : p + 1], feats[p : p + 1])
        assert torch.allclose(out[p], single[0], atol=1e-6)
    assert shape.num_params == 5 * 4 + 4 + 4 * 3 + 3


def test_continuous_actions_squashed_into_bounds():
    spec = EnvSpec("X", "vector", (3,), "continuous", 2, (-1.0, 0.0), (1.0, 2.0), None, None)
    raw = torch.tensor([[-100.0, 100.0], [0.0, 0.0]])
    acts = outputs_to_actions(raw, spec).numpy()
    assert np.allclose(acts[0], [-1.0, 2.0]) and np.allclose(acts[1], [0.0, 1.0])
