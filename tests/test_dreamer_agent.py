"""The Dreamer agent (``training/dreamer/agent.py``, ``actor.py``) by hand: the world model's
loss scales, the actor's and critic's losses in imagination, the replay value loss, the
return scale, the exploration ensemble, the gradients of one update (repval_grad,
actor_grad_mix, imag_last) and device placement."""

import math
from typing import Any

import numpy as np
import pytest
import torch

from worldmodels.data.replay import SequenceReplay


def test_the_loss_scales_come_from_the_config_and_weight_the_model_loss():
    """``dreamer.rew_scale``, ``dyn_scale`` and ``rep_scale`` are the world model's loss scales:
    on one batch, the total with the reward weighted 3 is the total with 1 plus 2 x the reward
    loss."""
    import worldmodels.registry  # noqa: F401  (registers the dreamer section)
    from worldmodels.config import parse_set, resolve
    from worldmodels.envs import probe
    from worldmodels.training.dreamer import Dreamer

    out = {}
    for scale in (1.0, 3.0):
        sets = ["method=dreamer", f"dreamer.rew_scale={scale}", "dreamer.dyn_scale=0.25"]
        cfg = resolve("CartPole-v1", ["debug"], {}, parse_set([*sets, "dreamer.bf16=false"]))
        torch.manual_seed(0)
        agent = Dreamer(cfg.section("dreamer"), probe(cfg.env), torch.device("cpu"))
        assert agent.wm.scales == {"dec": 1.0, "rew": scale, "cont": 1.0, "dyn": 0.25,
                                   "rep": 0.1}  # fmt: skip
        torch.nn.init.normal_(agent.wm.reward[-1].weight)  # not the zeroed head's log(bins)
        torch.manual_seed(1)
        batch = {
            "obs": torch.randn(2, 5, 4),
            "action": torch.nn.functional.one_hot(torch.randint(0, 2, (2, 5)), 2).float(),
            "reward": torch.randn(2, 5),
            "is_first": torch.zeros(2, 5, dtype=torch.bool),
            "is_terminal": torch.zeros(2, 5, dtype=torch.bool),
        }
        out[scale] = agent.wm.loss(batch)
    rew = out[1.0].parts["rew"]
    assert out[3.0].total.item() == pytest.approx(out[1.0].total.item() + 2 * rew.item(), rel=1e-5)
    assert out[3.0].parts["rew"].item() == pytest.approx(rew.item(), rel=1e-6)


def test_replay_value_loss_targets_real_returns_by_hand():
    """The critic's loss on replayed real windows: rows 0..3 = o0, o1, o2 (terminal), o0' (a
    new episode). Transitions 0->1 and 1->2 count, 2->3 crosses episodes: weight 0.
    G(1->2) = r2 = 1 (terminal); G(0->1) = r1 + gamma ((1 - lam) boot1 + lam G(1->2))."""
    import worldmodels.registry  # noqa: F401  (registers the dreamer section)
    from worldmodels.config import parse_set, resolve
    from worldmodels.envs import probe
    from worldmodels.training.dreamer import Dreamer

    sets = ["method=dreamer", "dreamer.slow_reg=0", "dreamer.gamma=0.9", "dreamer.lam=0.5"]
    cfg = resolve("CartPole-v1", ["debug"], {}, parse_set([*sets, "dreamer.bf16=false"]))
    torch.manual_seed(0)
    agent = Dreamer(cfg.section("dreamer"), probe(cfg.env), torch.device("cpu"))
    torch.nn.init.normal_(agent.critic[-1].weight)  # a zeroed critic's loss ignores targets
    feat = torch.randn(1, 4, agent.wm.feat_dim)
    data = {
        "reward": torch.tensor([[0.0, 1.0, 1.0, 0.0]]),
        "is_first": torch.tensor([[True, False, False, True]]),
        "is_terminal": torch.tensor([[False, False, True, False]]),
    }
    boot = torch.tensor([[7.0, 5.0, 3.0, 9.0]])
    g12 = 1.0
    g01 = 1.0 + 0.9 * (0.5 * 5.0 + 0.5 * g12)
    logits = agent.critic(feat[:, :3])
    ce = agent.twohot.loss(logits, torch.tensor([[g01, g12, 0.0]]))
    expected = (ce[0, 0] + ce[0, 1]) / 3
    loss = agent.replay_value_loss(feat, data, boot)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # repval_return: the finished episode's Monte Carlo returns (o0: 2.5, o1: 1.0) replace the
    # λ-returns (mc) or lift them (max: g01 = 4.15 stays, g12 = 1.0 = 1.0)
    data["mc_return"] = torch.tensor([[2.5, 1.0, 0.0, float("nan")]])
    for how, targets in (("mc", [2.5, 1.0]), ("max", [g01, g12]), ("lambda", [g01, g12])):
        agent.dc.repval_return = how
        ce = agent.twohot.loss(logits, torch.tensor([[*targets, 0.0]]))
        loss = agent.replay_value_loss(feat, data, boot)
        assert loss.item() == pytest.approx(((ce[0, 0] + ce[0, 1]) / 3).item(), rel=1e-6), how


def test_return_scale_is_an_ema_of_the_5_to_95_percentile_range_that_never_scales_up():
    """DreamerV3's return normaliser: the first batch sets the EMA of the 5th and 95th
    percentiles, later ones move it by (1 - decay); advantages are divided by the range only
    where it exceeds 1."""
    from worldmodels.training.dreamer import ReturnScale

    scale = ReturnScale(decay=0.9)
    assert scale.update(torch.arange(101.0)) == pytest.approx(90.0)  # 95 - 5
    lo, hi = 0.9 * 5 + 0.1 * 0.025, 0.9 * 95 + 0.1 * 0.475  # then returns 0, 0.005, ..., 0.5
    assert scale.update(torch.linspace(0, 0.5, 101)) == pytest.approx(hi - lo)
    assert (scale.lo, scale.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert ReturnScale().update(torch.linspace(0, 0.5, 101)) == 1.0  # small: not scaled up


def test_actor_and_critic_losses_in_imagination_by_hand(monkeypatch):
    """One imagined trajectory of H = 2 with rewards 2, 3 and continue probabilities 0.5, 1
    under a zeroed critic (uniform logits: every value 0, every cross-entropy log(bins)).
    lambda-returns: G1 = 3, G0 = 2 + gamma 0.5 (lam G1); the range < 1 is not scaled up;
    weights = cumprod(cont0, c1) = (1, 0.5); actor loss = -mean(w (logp G + eta H(pi)));
    critic loss = mean(w (1 + slow_reg) log(bins))."""
    import worldmodels.registry  # noqa: F401  (registers the dreamer section)
    from worldmodels.config import parse_set, resolve
    from worldmodels.envs import probe
    from worldmodels.models.rssm import RssmState
    from worldmodels.training.dreamer import Dreamer

    sets = ["method=dreamer", "dreamer.horizon=2", "dreamer.gamma=0.9", "dreamer.lam=0.5",
            "dreamer.entropy=0.1", "dreamer.slow_reg=0.5"]  # fmt: skip
    cfg = resolve("CartPole-v1", ["debug"], {}, parse_set([*sets, "dreamer.bf16=false"]))
    torch.manual_seed(0)
    agent = Dreamer(cfg.section("dreamer"), probe(cfg.env), torch.device("cpu"))
    feat = torch.randn(1, 3, agent.wm.feat_dim)
    actions = torch.tensor([[1, 0]])
    monkeypatch.setattr(agent, "imagine", lambda start: (feat, actions))
    monkeypatch.setattr(agent.wm, "reward_mean", lambda f: torch.tensor([[2.0, 3.0]]))
    monkeypatch.setattr(agent.wm, "cont_prob", lambda f: torch.tensor([[0.5, 1.0]]))
    start = RssmState(torch.zeros(1, 1), torch.zeros(1, 1))  # unused: imagine is fixed
    out = agent.actor_critic_losses(start, torch.tensor([1.0]))

    g1 = 3.0
    g0 = 2.0 + 0.9 * 0.5 * (0.5 * 0.0 + 0.5 * g1)
    dist = agent.actor.dist(feat[:, :2])
    logp, ent = dist.log_prob(actions)[0], dist.entropy()[0]
    w = torch.tensor([1.0, 0.5])
    actor = -(w * (logp * torch.tensor([g0, g1]) + 0.1 * ent)).mean()
    bins = cfg.section("dreamer").bins
    assert out["start_return"].item() == pytest.approx(g0, abs=1e-5)
    assert out["return_scale"].item() == 1.0
    assert out["actor_loss"].item() == pytest.approx(actor.item(), rel=1e-5)
    assert out["critic_loss"].item() == pytest.approx(0.75 * 1.5 * math.log(bins), rel=1e-5)
    assert out["imagined_return"].item() == pytest.approx((g0 + g1) / 2, abs=1e-5)


def test_the_exploration_bonus_is_the_ensemble_s_disagreement_added_to_every_reward(
    monkeypatch,
):
    """As above with dreamer.expl_scale 0.5 and a disagreement of 1 on every imagined
    transition: rewards 2.5, 3.5, so G0 = 2.5 + gamma 0.5 lam 3.5."""
    import worldmodels.registry  # noqa: F401  (registers the dreamer section)
    from worldmodels.config import parse_set, resolve
    from worldmodels.envs import probe
    from worldmodels.models.rssm import RssmState
    from worldmodels.training.dreamer import Dreamer

    sets = ["method=dreamer", "dreamer.horizon=2", "dreamer.gamma=0.9", "dreamer.lam=0.5",
            "dreamer.expl_scale=0.5"]  # fmt: skip
    cfg = resolve("CartPole-v1", ["debug"], {}, parse_set([*sets, "dreamer.bf16=false"]))
    agent = Dreamer(cfg.section("dreamer"), probe(cfg.env), torch.device("cpu"))
    assert agent.expl is not None
    seen: list[torch.Size] = []
    feat = torch.randn(1, 3, agent.wm.feat_dim)
    monkeypatch.setattr(agent, "imagine", lambda start: (feat, torch.tensor([[1, 0]])))
    monkeypatch.setattr(agent.wm, "reward_mean", lambda f: torch.tensor([[2.0, 3.0]]))
    monkeypatch.setattr(agent.wm, "cont_prob", lambda f: torch.tensor([[0.5, 1.0]]))
    monkeypatch.setattr(
        agent.expl, "disagreement", lambda x: seen.append(x.shape) or torch.ones(x.shape[:-1])
    )
    out = agent.actor_critic_losses(RssmState(torch.zeros(1, 1), torch.zeros(1, 1)),
                                     torch.tensor([1.0]))  # fmt: skip
    assert seen == [torch.Size([1, 2, agent.wm.feat_dim + 2])]  # [h, z]_t and one-hot a_t
    assert out["start_return"].item() == pytest.approx(2.5 + 0.9 * 0.5 * 0.5 * 3.5, abs=1e-5)


def test_disagreement_ensemble_by_hand():
    """Two heads whose hidden layer is zeroed output their biases 0 and 2: disagreement =
    std([0, 2]) = sqrt(2) per output; against a target of 1 each head's MSE is 1, summed over
    heads 2; a row of weight 0 adds nothing. Trained on one fixed transition, the heads agree."""
    from worldmodels.models.disagreement import DisagreementEnsemble

    e = DisagreementEnsemble(inp=3, out=4, hidden=5, heads=2)
    with torch.no_grad():
        e.w1.zero_()
        e.b1.zero_()
        e.b2[0].fill_(0.0)
        e.b2[1].fill_(2.0)
    x = torch.randn(6, 3)
    assert torch.allclose(e.disagreement(x), torch.full((6,), math.sqrt(2)))
    assert e.disagreement(x.reshape(2, 3, 3)).shape == (2, 3)
    weight = torch.tensor([1.0, 1, 1, 0, 0, 0])
    assert e.loss(x, torch.ones(6, 4), weight).item() == pytest.approx(2 * 3 / 6)
    torch.manual_seed(0)
    e = DisagreementEnsemble(inp=3, out=4, hidden=16, heads=4)
    opt = torch.optim.Adam(e.parameters(), 1e-2)
    x, y = torch.randn(1, 3), torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    before = e.disagreement(x).item()
    for _ in range(300):
        opt.zero_grad()
        e.loss(x, y, torch.ones(1)).backward()
        opt.step()
    assert e.disagreement(x).item() < before / 10


def _agent_and_batch(sets: list[str]) -> tuple[Any, dict[str, np.ndarray]]:
    """A debug-size CartPole agent (its critic's head drawn, not zeroed: a zeroed critic passes
    no gradient on) and a fixed replayed batch of 4 windows of 8 steps."""
    import worldmodels.registry  # noqa: F401  (registers the dreamer section)
    from worldmodels.config import parse_set, resolve
    from worldmodels.envs import probe
    from worldmodels.training.dreamer import Dreamer

    cfg = resolve(
        "CartPole-v1", ["debug"], {}, parse_set(["method=dreamer", *sets, "dreamer.bf16=false"])
    )
    torch.manual_seed(0)
    agent = Dreamer(cfg.section("dreamer"), probe(cfg.env), torch.device("cpu"))
    torch.nn.init.normal_(agent.critic[-1].weight)
    rep = SequenceReplay(64, (4,), np.dtype(np.float32), 2)
    rng = np.random.default_rng(0)
    for i in range(40):
        rep.add(rng.normal(size=4).astype(np.float32), np.eye(2, dtype=np.float32)[i % 2],
                1.0, i % 13 == 0, i % 13 == 12)  # fmt: skip
    return agent, rep.sample(np.random.default_rng(1), 4, 8)


def _update_grads(sets: list[str]) -> dict[str, list[torch.Tensor]]:
    """One ``Dreamer.update`` on the fixed batch -> each optimiser's gradients (pre-clip); the
    model is not stepped, so it imagines the same with and without repval_grad."""
    agent, batch = _agent_and_batch(sets)
    grads: dict[str, list[torch.Tensor]] = {}

    def steps(items: list[tuple[str, torch.Tensor, torch.nn.Module, float]]) -> None:
        for name, loss, module, _ in items:
            agent.opts[name].zero_grad(set_to_none=True)
            loss.backward()
            grads[name] = [torch.zeros_like(p) if p.grad is None else p.grad.clone()
                           for p in module.parameters()]  # fmt: skip
        for name, _, _, _ in items:
            if name != "model":
                agent.opts[name].step()

    agent._steps = steps  # type: ignore[method-assign]
    agent.update(batch, 0)
    return grads


def test_repval_grad_trains_the_world_model_and_leaves_the_critic_s_gradient_alone():
    """repval_grad: the model's gradient is the model loss's plus repval_scale times the replay
    value loss's through the posterior states (linear in the scale; without it, the scale
    does not touch the model); the critic's and actor's gradients are those without it."""
    on = [_update_grads(["dreamer.repval_grad=true", f"dreamer.repval_scale={s}"])
          for s in (1, 2, 3)]  # fmt: skip
    off = [_update_grads([f"dreamer.repval_scale={s}"]) for s in (1, 2)]
    flat = {k: [torch.cat([g.flatten() for g in r[k]]) for r in on + off] for k in on[0]}
    g1, g2, g3, o1, o2 = flat["model"]
    assert torch.equal(o1, o2)  # without repval_grad, the scale is not the model's business
    assert not torch.allclose(g1, o1)
    assert torch.allclose(g3 - g2, g2 - g1, atol=1e-6)
    assert torch.allclose(g1 - o1, g2 - g1, atol=1e-6)
    for name in ("critic", "actor"):  # the model's backward leaves no stray critic gradient
        assert torch.equal(flat[name][0], flat[name][3])


def test_actor_grad_mix_blends_reinforce_with_dynamics_backpropagation():
    """actor_grad_mix m: the actor's gradient is (1 - m) REINFORCE's plus m that of the
    λ-return differentiated through the frozen world model and critic (the same imagined
    draws: a straight-through one-hot has the one-hot's value); at m = 1 the gradient comes
    through the dynamics alone; the world model's and critic's gradients are unchanged."""
    runs = [_update_grads(["dreamer.repval_scale=1", f"dreamer.actor_grad_mix={m}"])
            for m in (0, 0.5, 1)]  # fmt: skip
    flat = {k: [torch.cat([g.flatten() for g in r[k]]) for r in runs] for k in runs[0]}
    a0, a5, a1 = flat["actor"]
    assert torch.allclose(a5, (a0 + a1) / 2, atol=1e-6)
    assert not torch.allclose(a0, a1) and a1.abs().sum() > 0
    for name in ("model", "critic"):
        assert all(torch.equal(flat[name][0], g) for g in flat[name][1:])


def test_actor_grad_mix_with_repval_grad_steps_every_module():
    """Dynamics backpropagation reads the world model's weights that the replay value loss
    shapes: every backward runs before any step, so the update neither fails on a weight
    stepped in place nor leaves a module unchanged."""
    agent, batch = _agent_and_batch(
        ["dreamer.repval_grad=true", "dreamer.repval_scale=1", "dreamer.actor_grad_mix=0.5"]
    )
    modules = {"model": agent.wm, "actor": agent.actor, "critic": agent.critic}
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in modules.items()}
    out = agent.update(batch, 0)
    assert all(np.isfinite(v) for v in out.values())
    for k, m in modules.items():
        assert any(not torch.equal(a, p) for a, p in zip(before[k], m.parameters(), strict=True)), k


def test_frozen_modules_pass_gradients_on_and_stay_trainable():
    from worldmodels.training.dreamer import frozen

    net, fixed = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).requires_grad_(False)
    x = torch.ones(1, 2, requires_grad=True)
    with frozen(net, fixed, None):
        net(x).sum().backward()
    assert net.weight.grad is None and x.grad is not None
    assert net.weight.requires_grad and not fixed.weight.requires_grad


def test_imag_last_imagines_from_the_windows_last_steps_only(monkeypatch):
    """imag_last K: the actor-critic imagines from the last K posterior states of each window
    and the replay value loss sees those K steps; K = seq_len is the same update as 0."""
    from worldmodels.training.dreamer import Dreamer

    seen: list[tuple[int, ...]] = []
    real = Dreamer.actor_critic_losses

    def spy(self, start, cont0):  # type: ignore[no-untyped-def]
        seen.append((start.h.shape[0], cont0.shape[0]))
        return real(self, start, cont0)

    monkeypatch.setattr(Dreamer, "actor_critic_losses", spy)
    _update_grads(["dreamer.imag_last=3", "dreamer.repval_scale=1"])
    assert seen == [(4 * 3, 4 * 3)]  # batch 4 x the last 3 of 8 steps
    every = _update_grads(["dreamer.repval_scale=1"])
    whole = _update_grads(["dreamer.imag_last=8", "dreamer.repval_scale=1"])
    assert seen[1:] == [(32, 32), (32, 32)]
    for name in every:
        assert all(torch.equal(a, b) for a, b in zip(every[name], whole[name], strict=True))


@pytest.mark.parametrize(
    ("env_id", "sets"),
    [
        ("CartPole-v1", ["dreamer.expl_scale=0.1"]),
        ("Pendulum-v1", ["dreamer.repval_grad=true"]),
    ],
)
def test_an_update_and_a_step_make_no_tensor_off_the_agent_s_device(env_id, sets):
    """On CUDA a tensor made without ``device=`` lands on the CPU and breaks the first op that
    mixes it with the agent's (the first GPU run crashed so, in the return scale's quantile).
    Here every such tensor lands on ``meta`` instead, which no CPU op accepts either, so an
    update and an acting step on the CPU find them without a GPU."""
    import worldmodels.registry  # noqa: F401  (registers the dreamer section)
    from worldmodels.config import parse_set, resolve
    from worldmodels.envs import action_to_env, make_env, probe
    from worldmodels.training.dreamer import Dreamer, fill_random, obs_dtype

    cfg = resolve(env_id, ["debug"], {}, parse_set(["method=dreamer", *sets, "dreamer.bf16=false"]))
    spec, dc = probe(cfg.env), cfg.section("dreamer")
    torch.manual_seed(0)
    agent = Dreamer(dc, spec, torch.device("cpu"))
    replay = SequenceReplay(200, spec.obs_shape, obs_dtype(spec), spec.action_dim)
    env, rng = make_env(cfg.env), np.random.default_rng(0)
    obs = fill_random(agent, env, replay, rng, 100)
    batch = replay.sample(rng, dc.batch_size, dc.seq_len, dc.end_fraction)
    state = agent.initial(1)
    with torch.device("meta"):
        stats = agent.update(batch, 0)
        for first in (True, False):
            action, state = agent.act(obs[None], state, np.array([first]), mode=first)
    assert all(math.isfinite(v) for v in stats.values())
    assert env.action_space.contains(action_to_env(action[0], spec))


def test_bf16_runs_the_imagined_batch_where_the_cpu_multiplies_it_and_agrees_with_float32():
    """dreamer.bf16 on a CPU with AMX: the heads, actor and critic losses over the imagined
    states run in bf16 and agree with float32 to bf16's precision; on other CPUs, or with
    bf16 off, the same numbers exactly."""
    import worldmodels.registry  # noqa: F401  (registers the dreamer section)
    from worldmodels.config import parse_set, resolve
    from worldmodels.envs import probe
    from worldmodels.models.rssm import RssmState
    from worldmodels.runs import cpu_bf16
    from worldmodels.training.dreamer import Dreamer

    out = {}
    for bf16 in (False, True):
        sets = ["method=dreamer", f"dreamer.bf16={str(bf16).lower()}"]
        cfg = resolve("CartPole-v1", ["debug"], {}, parse_set(sets))
        torch.manual_seed(0)
        agent = Dreamer(cfg.section("dreamer"), probe(cfg.env), torch.device("cpu"))
        torch.nn.init.normal_(agent.critic[-1].weight)
        start = RssmState(
            torch.randn(32, agent.wm.rssm.deter), torch.zeros(32, agent.wm.rssm.stoch)
        )
        torch.manual_seed(1)
        out[bf16] = agent.actor_critic_losses(start, torch.ones(32))
    for key in ("actor_loss", "critic_loss", "imagined_return"):
        lo, hi = out[True][key], out[False][key]
        assert lo.dtype == torch.float32, key
        if cpu_bf16():
            assert lo.item() == pytest.approx(hi.item(), rel=0.02, abs=0.02), key
            assert lo.item() != hi.item(), key  # bf16 did run
        else:
            assert lo.item() == hi.item(), key
