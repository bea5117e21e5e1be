"""Step the dream and the real env through a finished run's world model on a device:
python benchmarks/dream_envs_check.py RUN_DIR cuda
"""

import sys

import gymnasium as gym

import worldmodels  # noqa: F401  (registers the envs)

for name in ("worldmodels/Dream-v0", "worldmodels/Real-v0"):
    env = gym.make(name, run_dir=sys.argv[1], device=sys.argv[2])
    obs, _ = env.reset(seed=0)
    total = 0.0
    for _ in range(50):
        obs, r, te, tr, _ = env.step(env.action_space.sample())
        total += float(r)
        if te or tr:
            obs, _ = env.reset()
    print(name, sys.argv[2], "ok", obs.shape, round(total, 3))
