"""Object-state Pong: the RAM addresses agree with the rendered frames, and the env is a
well-formed Gymnasium env that `collect` can use."""

import warnings

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

from worldmodels.pong_objects import FEATURES, RAM, PongObjects

COLOURS = {"ball": (236, 236, 236), "player": (92, 186, 92), "enemy": (213, 130, 74)}


def test_ram_positions_match_the_rendered_frames():
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make("ALE/Pong-v5", repeat_action_probability=0.0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    pairs: dict[str, list[tuple[float, float]]] = {k: [] for k in ("bx", "by", "py", "ey")}
    for _ in range(400):
        frame, _, term, trunc, _ = env.step(int(rng.integers(6)))
        ram = env.unwrapped.ale.getRAM()
        play = frame[34:194]
        found = {k: np.argwhere((play == c).all(-1)) for k, c in COLOURS.items()}
        if len(found["ball"]) and ram[RAM["ball_x"]] > 0:
            pairs["bx"].append((ram[RAM["ball_x"]], found["ball"][:, 1].mean()))
            pairs["by"].append((ram[RAM["ball_y"]], found["ball"][:, 0].mean()))
        if len(found["player"]):
            pairs["py"].append((ram[RAM["player_y"]], found["player"][:, 0].mean()))
        if len(found["enemy"]):
            pairs["ey"].append((ram[RAM["enemy_y"]], found["enemy"][:, 0].mean()))
        if term or trunc:
            break
    env.close()
    for name, values in pairs.items():
        x, y = np.asarray(values, dtype=float).T
        assert len(x) > 100, name
        assert np.corrcoef(x, y)[0, 1] > 0.999, name
        if name.startswith("b"):  # the ball: one RAM unit is one pixel
            assert abs(np.polyfit(x, y, 1)[0] - 1.0) < 0.01, name


def test_object_state_env_layout_and_check_env():
    env = PongObjects(repeat_action_probability=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ALE's own deprecation notices
        check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (4 * len(FEATURES),) and obs.dtype == np.float32
    assert np.array_equal(obs[:10], obs[30:])  # a reset repeats the first frame
    for _ in range(30):
        obs, *_ = env.step(0)
    ram = env.ale_env.unwrapped.ale.getRAM()
    last = obs[30:]
    assert last[FEATURES.index("ball_x")] == ram[RAM["ball_x"]]
    assert last[FEATURES.index("player_y")] == ram[RAM["player_y"]]
    prev = obs[20:30]
    assert last[FEATURES.index("ball_vx")] == last[0] - prev[0]
    env.close()
