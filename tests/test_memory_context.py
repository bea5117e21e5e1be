"""Bug 7: M trained on short windows must see the states it acts from. With
``memory.carry_state`` every window starts from M's state run from the episode's first step, so
the window losses over an episode are exactly the loss of M run over the whole episode in one
pass, as acting runs it; windows from the zero state are not."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from worldmodels.config.schema import MemoryConfig
from worldmodels.data.loaders import LatentCache, sequence_batches
from worldmodels.data.store import Episode
from worldmodels.models.memory import build_memory
from worldmodels.models.memory.base import MemoryBatch
from worldmodels.training.memory import carried_states

T, Z, A, SEQ = 90, 3, 2, 16


def _cache(tmp_path, rng) -> LatentCache:
    cache = LatentCache(tmp_path / "latents", "v")
    for i in range(2):
        mu = rng.standard_normal((T + 1, Z)).astype(np.float32)
        ep = Episode(
            observations=np.zeros((T + 1, 1), np.float32),
            actions=rng.integers(A, size=T),
            rewards=rng.standard_normal(T).astype(np.float32),
            terminated=np.zeros(T, bool),
        )
        cache.write(i, mu, np.zeros_like(mu), ep)
    return cache


def _window_nll_sum(model, cache, carry: bool) -> float:
    """Sum over every window of every episode of the masked per-step loss."""
    total = 0.0
    batches = sequence_batches(
        cache,
        [0, 1],
        MemoryConfig(seq_len=SEQ, batch_size=4, chunk_episodes=2),
        SimpleNamespace(action_kind="discrete", action_dim=A),
        np.random.default_rng(3),
        False,
        torch.device("cpu"),
        carried_states(model, torch.device("cpu")) if carry else None,
    )
    with torch.no_grad():
        for batch in batches:
            _, parts = model.loss(batch)
            total += parts["loss"] * float(batch.mask.sum())
    return total


def _whole_episode_sum(model, cache) -> float:
    total = 0.0
    with torch.no_grad():
        for i in (0, 1):
            d = cache.read(i)
            acts = torch.nn.functional.one_hot(torch.as_tensor(d["actions"]).long(), A).float()
            batch = MemoryBatch(
                torch.as_tensor(d["mu"])[None],
                acts[None],
                torch.as_tensor(d["rewards"])[None],
                torch.as_tensor(d["terminated"]).float()[None],
                torch.ones(1, T),
            )
            _, parts = model.loss(batch)
            total += parts["loss"] * T
    return total


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("mdn_rnn", {"hidden_dim": 8, "num_mixtures": 2}),
        ("mdn_rnn", {"hidden_dim": 8, "num_mixtures": 2, "ensemble": 2}),
        (
            "transformer",
            {"hidden_dim": 8, "num_mixtures": 2, "layers": 1, "heads": 2, "max_len": 8},
        ),
    ],
)
def test_carried_windows_score_exactly_what_acting_over_the_episode_scores(tmp_path, kind, kwargs):
    rng = np.random.default_rng(0)
    cache = _cache(tmp_path, rng)
    torch.manual_seed(0)
    model = build_memory(kind, {"latent_dim": Z, "action_dim": A, **kwargs}).eval()
    whole = _whole_episode_sum(model, cache)
    carried = _window_nll_sum(model, cache, carry=True)
    zero = _window_nll_sum(model, cache, carry=False)
    assert carried == pytest.approx(whole, rel=1e-5)
    assert zero != pytest.approx(whole, rel=1e-4)  # zero-state windows score other states


def test_markov_models_carry_nothing():
    model = build_memory("residual_mlp", {"latent_dim": Z, "action_dim": A, "hidden_dim": 8})
    assert not model.recurrent
    assert build_memory("mdn_rnn", {"latent_dim": Z, "action_dim": A, "hidden_dim": 8}).recurrent
