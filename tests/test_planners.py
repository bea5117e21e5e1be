"""Planners on hand-built worlds whose best plan is known, batching, ensembles, and the bad
inputs of issue 5 (one-line errors)."""

import pytest
import torch
from torch import Tensor

from worldmodels.cli import main
from worldmodels.config import PlannerConfig
from worldmodels.controllers.planners import (
    CEMPlanner,
    DiscretePlanner,
    PlannerPolicy,
    build_planner,
    sequence_values,
)
from worldmodels.envs import EnvSpec
from worldmodels.errors import UserError
from worldmodels.models.memory.ensemble import Ensemble
from worldmodels.models.memory.markov import MarkovDynamics
from worldmodels.models.vision.identity import IdentityVision
from worldmodels.world_model import WorldModel


class LineWorld(MarkovDynamics):
    """z' = z + step(a) on a line; reward offset - (z' - goal)^2; done when z' < wall."""

    def __init__(
        self, discrete: bool, goal: float, wall: float = -1e9, bias: float = 0.0, offset=0.0
    ):
        super().__init__(1, 2 if discrete else 1)
        self.discrete, self.goal, self.wall, self.bias = discrete, goal, wall, bias
        self.offset = offset
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def transition(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        step = (a[:, 1:2] - a[:, 0:1]) if self.discrete else a
        nxt = z + step + self.bias
        reward = self.offset - (nxt[:, 0] - self.goal) ** 2
        done = torch.where(nxt[:, 0] < self.wall, 20.0, -20.0)
        return nxt, reward, done


def _spec(discrete: bool) -> EnvSpec:
    return EnvSpec(
        "Line-v0",
        "vector",
        (1,),
        "discrete" if discrete else "continuous",
        2 if discrete else 1,
        () if discrete else (-1.0,),
        () if discrete else (1.0,),
        None,
        None,
    )


def _world(memory, discrete: bool) -> WorldModel:
    return WorldModel(IdentityVision(1), memory, _spec(discrete), torch.device("cpu"))


def test_sequence_values_are_discounted_rewards_with_survival_by_hand():
    world = _world(LineWorld(True, goal=0.0, wall=-1.5), True)
    seqs = torch.tensor([[[1, 1, 1], [0, 0, 0]]])  # up three times / down into the wall
    z, state = torch.zeros(1, 1), world.initial(1)
    vals = sequence_values(world, z, state, seqs, gamma=0.5)
    up = -(1.0 + 0.5 * 4 + 0.25 * 9)
    p = torch.sigmoid(torch.tensor(20.0))  # the wall is hit on the second step down
    down = -(1.0 + 0.5 * 4 * 1.0 + 0.25 * 9 * (1 - p))
    torch.testing.assert_close(vals, torch.tensor([[up, float(down)]]))


@pytest.mark.parametrize("goal, first", [(3.0, 1), (-2.0, 0)])
def test_enumeration_finds_the_best_first_action_for_a_batch_of_starts(goal, first):
    world = _world(LineWorld(True, goal=goal), True)
    planner = DiscretePlanner(world, PlannerConfig(horizon=4, max_sequences=16))
    assert planner.exhaustive
    z = torch.tensor([[0.0], [0.5], [-0.5]])
    actions, _ = planner.plan(z, world.initial(3))
    assert actions.tolist() == [first] * 3


def test_enumeration_avoids_a_predicted_termination():
    # the goal lies beyond a wall: each step down pays more, but living pays most
    world = _world(LineWorld(True, goal=-10.0, wall=-2.5, offset=200.0), True)
    planner = DiscretePlanner(world, PlannerConfig(horizon=5, max_sequences=64))
    values = sequence_values(world, torch.zeros(1, 1), world.initial(1), planner._sequences(1), 1.0)
    best = planner._sequences(1)[0, values.argmax()]
    # the wall is hit at most on the last step, whose reward still counts and which ends
    # nothing inside the horizon
    assert (torch.cumsum(torch.where(best == 1, 1, -1), 0)[:-1] > -3).all()


def test_random_sequences_when_enumeration_is_too_large():
    world = _world(LineWorld(True, goal=5.0), True)
    planner = DiscretePlanner(world, PlannerConfig(horizon=12, max_sequences=64))
    assert not planner.exhaustive
    seqs = planner._sequences(2)
    assert seqs.shape == (2, 64, 12) and (seqs[:, :, 0] == 0).sum() == 64
    assert planner.plan(torch.zeros(2, 1), world.initial(2))[0].tolist() == [1, 1]


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_cem_and_mppi_find_the_continuous_optimum_within_bounds(kind):
    world = _world(LineWorld(False, goal=2.5), False)
    cfg = PlannerConfig(horizon=3, population=128, elites=12, iterations=6, mppi_lambda=0.1)
    planner = CEMPlanner(world, cfg, kind)
    z = torch.zeros(4, 1)
    plan = planner.reset(4)
    action, plan = planner.plan(z, world.initial(4), plan)
    assert (action > 0.85).all() and (action <= 1.0).all()  # full speed toward the goal
    assert plan.shape == (4, 3, 1)  # shifted plan: the warm start of the next decision


def test_pessimistic_aggregation_takes_the_worst_member():
    members = [LineWorld(True, goal=0.0, bias=b) for b in (0.0, 2.0)]
    world = _world(Ensemble(members), True)
    seqs = torch.tensor([[[1, 1]]])
    z, state = torch.zeros(1, 1), world.initial(1)
    each = [sequence_values(_world(m, True), z, m.initial(1), seqs, 1.0) for m in members]
    worst = sequence_values(world, z, state, seqs, 1.0, aggregate="pessimistic")
    torch.testing.assert_close(worst, torch.minimum(*each))


def test_planner_policy_acts_in_batches_and_counts_decisions():
    world = _world(LineWorld(True, goal=3.0), True)
    policy = PlannerPolicy(world, DiscretePlanner(world, PlannerConfig(horizon=3)))
    import numpy as np

    state = policy.reset(5)
    actions, state = policy.act(np.zeros((5, 1), np.float32), state)
    assert actions.tolist() == [1] * 5 and policy.decisions == 5


def test_blend_samples_the_mixture_of_plan_and_policy():
    """Regression (bug 5): the argmax of the blended distribution made any blend >= 0.5 pure
    planning. Acting must draw from p = (1 - w) pi + w onehot(plan)."""
    from worldmodels.rl.actor_critic import ActorCritic

    world = _world(LineWorld(True, goal=3.0), True)  # the plan: action 1
    base = ActorCritic(world.feature_dim, world.spec)
    with torch.no_grad():
        base.policy[-1].bias.copy_(torch.tensor([10.0, -10.0]))  # pi: always action 0
    planner = build_planner(world, PlannerConfig(horizon=3, blend=0.7), base)
    z = torch.zeros(4000, 1)
    actions, _ = planner.plan(z, world.initial(4000))
    assert abs(actions.float().mean().item() - 0.7) < 0.03
    continuous = _world(LineWorld(False, goal=1.0), False)
    with pytest.raises(UserError, match="CEM and MPPI do not blend"):
        build_planner(
            continuous, PlannerConfig(kind="cem", blend=0.5), ActorCritic(2, continuous.spec)
        )
    with pytest.raises(UserError, match="this run has none"):
        build_planner(world, PlannerConfig(blend=0.5))


def test_planner_bad_inputs_are_one_line_errors():
    discrete = _world(LineWorld(True, goal=1.0), True)
    continuous = _world(LineWorld(False, goal=1.0), False)
    with pytest.raises(UserError, match="discrete actions; use --planner enumerate"):
        build_planner(discrete, PlannerConfig(kind="cem"))
    with pytest.raises(UserError, match="continuous actions; use --planner cem or mppi"):
        build_planner(continuous, PlannerConfig(kind="enumerate"))
    with pytest.raises(UserError, match="horizon must be >= 1"):
        build_planner(discrete, PlannerConfig(horizon=0))
    with pytest.raises(UserError, match="without its reward head"):
        build_planner(discrete, PlannerConfig(), reward_trained=False)


def test_cli_planner_errors_and_mpc_end_to_end(tmp_path, capsys):
    run = tmp_path / "mpc"
    argv = ["train", "--env", "CartPole-v1", "--method", "mpc", "--run-dir", str(run), "--quiet"]
    sets = [
        "vision.kind=identity",
        "memory.kind=residual_mlp",
        "memory.hidden_dim=16",
        "memory.epochs=2",
        "memory.ensemble=2",
        "mpc.random_episodes=4",
        "mpc.total_steps=150",
        "mpc.retrain_epochs=1",
        "planner.horizon=3",
        "evaluate.episodes=2",
    ]
    assert main(argv + [x for s in sets for x in ("--set", s)]) == 0
    import json

    log = json.loads((run / "mpc.json").read_text())
    assert log["complete"] and log["real_env_steps"] == 150  # the budget is exact
    assert json.loads((run / "eval.json").read_text())["real_env_steps"] == 150
    capsys.readouterr()
    assert main(["evaluate", "--run-dir", str(run), "--planner", "cem", "--quiet"]) == 2
    assert "discrete actions; use --planner enumerate" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(run), "--planning-horizon", "0", "--quiet"]) == 2
    assert "--planning-horizon must be >= 1" in capsys.readouterr().err


def test_mpc_critic_features_of_a_markov_model_are_z_without_stepping():
    import numpy as np

    from worldmodels.data.store import Episode
    from worldmodels.models.memory.mdn_rnn import MDNRNN
    from worldmodels.training.mpc import _episode_features

    obs = np.arange(6, dtype=np.float32).reshape(6, 1)
    ep = Episode(obs, np.array([0, 1, 1, 0, 1]), np.zeros(5, np.float32), np.zeros(5, bool))
    markov = _world(LineWorld(True, goal=0.0), discrete=True)
    assert torch.equal(_episode_features(markov, ep), torch.as_tensor(obs))
    # a recurrent M is stepped along the episode: h_0 = 0, then h_t depends on the actions
    torch.manual_seed(0)
    rnn = _world(MDNRNN(1, 2, hidden_dim=4, num_mixtures=1), discrete=True)
    feats = _episode_features(rnn, ep)
    assert feats.shape == (6, 5) and torch.equal(feats[:, :1], torch.as_tensor(obs))
    assert torch.all(feats[0, 1:] == 0) and torch.all(feats[1:, 1:].abs().sum(-1) > 0)
