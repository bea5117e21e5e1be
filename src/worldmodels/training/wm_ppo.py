"""``--method wm-ppo``: PPO on a mix of real and imagined experience.

Each iteration: ``ac.num_envs x ac.n_steps`` real steps through V and M (every finished
episode lands in the episode store), then imagined rollouts of ``imagination.horizon`` steps
started from the real states just visited (``DreamEnv``), as many as make the imagined share
of the batch ``imagination.ratio``; one PPO update on both. Every ``imagination.retrain_every``
iterations M is retrained on all real data so far. ``agent/last`` is written after every
iteration, so a kill loses at most the iteration in progress and ``--resume`` continues.
"""

from __future__ import annotations

from typing import Any

import torch

from worldmodels.config import Config
from worldmodels.data.store import EpisodeStore, is_validation
from worldmodels.envs import EnvSpec
from worldmodels.rl.actor_critic import ActorCritic
from worldmodels.rl.latent_env import LatentVecEnv
from worldmodels.rl.ppo import Collector, Rollout, cat_rollouts, ppo_update
from worldmodels.runs import RunDir
from worldmodels.training.actor_critic_config import ActorCriticConfig, ImaginationConfig
from worldmodels.training.memory import finetune_memory
from worldmodels.training.on_policy import Progress, imagined_rollout
from worldmodels.world_model import WorldModel


class WmPpoUpdate:
    """The PPO update on real + imagined experience, on the loop of ``training/on_policy.py``."""

    seed_offset = 500

    def __init__(self, run: RunDir, cfg: Config, spec: EnvSpec, world: WorldModel, writer: Any):
        self.run, self.cfg, self.spec, self.world, self.writer = run, cfg, spec, world, writer
        self.gen: torch.Generator | None = None

    def setup(self, ac: ActorCritic) -> torch.optim.Optimizer:
        self.ac = ac
        self.opt = torch.optim.Adam(
            ac.parameters(), lr=self.cfg.section(ActorCriticConfig).lr, eps=1e-5
        )
        return self.opt

    def wrap(self, venv: LatentVecEnv) -> Any:
        return venv

    def state(self) -> dict[str, Any]:
        """V and M as they are now: M is retrained during training, so an actor-critic is
        saved with (and evaluated on) the features it was trained on."""
        return {
            "vision_state": self.world.vision.state_dict(),
            "memory_state": self.world.memory.state_dict(),
        }

    def load(self, last: dict[str, Any]) -> None:
        pass

    def loop_state(self) -> dict[str, Any]:
        """The minibatch-order stream, continued across iterations."""
        return {"gen": None if self.gen is None else self.gen.get_state()}

    def load_loop_state(self, state: dict[str, Any]) -> None:
        if state["gen"] is not None:
            self.gen = torch.Generator()
            self.gen.set_state(state["gen"])

    def iterate(
        self, collector: Collector, prog: Progress, it: int, where: str
    ) -> dict[str, float]:
        acfg = self.cfg.section(ActorCriticConfig)
        if self.gen is None:  # minibatch order: a stream of its own, seeded where training is
            self.gen = torch.Generator().manual_seed(self.cfg.seed + 501 + prog.iteration)
        record: list[Any] = []
        parts: list[Rollout] = [collector.collect(acfg.n_steps, where, record)]
        imagined = imagined_rollout(self.cfg, self.world, self.ac, record, it, where)
        if imagined is not None:
            parts.append(imagined)
            prog.imagined_steps += len(imagined)
        batch = cat_rollouts(parts)
        advs, rets = zip(*(p.advantages(acfg.gamma, acfg.gae_lambda) for p in parts), strict=True)
        batch["advantages"] = torch.cat([a.reshape(-1) for a in advs])
        batch["returns"] = torch.cat([r.reshape(-1) for r in rets])
        stats = ppo_update(
            self.ac,
            self.opt,
            batch,
            acfg.ppo_epochs,
            acfg.minibatch_size,
            acfg.clip_range,
            acfg.value_coef,
            acfg.entropy_coef,
            acfg.max_grad_norm,
            where,
            self.gen,
        )
        ratio = len(imagined) / len(batch["rewards"]) if imagined is not None else 0.0
        return stats | {"imagination_ratio": ratio}

    def after_iteration(self, prog: Progress, it: int, real_steps: int) -> None:
        """Every ``imagination.retrain_every`` iterations, retrain M on all real data."""
        ic = self.cfg.section(ImaginationConfig)
        if not ic.retrain_every or it % ic.retrain_every:
            return
        store = EpisodeStore(self.run.episodes)
        val_fraction = self.cfg.collect.val_fraction
        indices = [i for i in store.valid_indices() if not is_validation(i, val_fraction)]
        m = finetune_memory(
            self.run,
            self.cfg,
            self.spec,
            self.world,
            indices,
            ic.retrain_epochs,
            self.cfg.seed + it,
        )
        for k, v in m.items():
            self.writer.add_scalar(f"memory/{k}", v, real_steps)
