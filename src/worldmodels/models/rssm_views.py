"""The RSSM seen as the toolkit's V and M, so that ``diagnose``, the dream env, CMA-ES in the
dream and the planners run on a DreamerV3 world model like on every other.

The latent ``z`` of this view is the RSSM's whole model state, the feature [h, z_stoch] the
actor and critic read: it already carries the history, so the M view is Markov (no
recurrent feature, like ``markov.py``). V's encoding of an episode is the posterior filtered
along it (``encode_episode``); a single observation is encoded as an episode's first step,
and one reached by M's step (``WorldModel.observe``: real envs seen through the model, the
agents acting in them) as the posterior of that step's deterministic state, so a real step's
feature is the one the RSSM filters to, beside the dream's prior one.
M's step is one prior step: h' = GRU(h, [z_stoch, a]), z' from the prior (its mode at
tau = 0, a sample at tau > 0, logits scaled by 1 / tau), and the reward and continue heads
read the next state [h', z'], as DreamerV3's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodels.models.memory.base import MemoryModel
from worldmodels.models.rssm import DreamerWorldModel, PixelCodec, RssmState, symexp, symlog
from worldmodels.models.vision.base import Loss, Rng, VisionModel


def _split(wm: DreamerWorldModel, feat: Tensor) -> RssmState:
    return RssmState(feat[..., : wm.rssm.deter], feat[..., wm.rssm.deter :])


class ActionScale:
    """The toolkit's action features (one-hot, or continuous actions in the env's range) ->
    the RSSM's inputs (one-hot, or scaled to [-1, 1] as dreamer trained it)."""

    def __init__(self, low: Any = None, high: Any = None):
        self.low = None if low is None else torch.as_tensor(np.asarray(low, np.float32))
        self.high = None if high is None else torch.as_tensor(np.asarray(high, np.float32))

    def __call__(self, action: Tensor) -> Tensor:
        if self.low is None or self.high is None:
            return action.float()
        low, high = self.low.to(action.device), self.high.to(action.device)
        return (2 * (action.float() - low) / (high - low) - 1).clamp(-1, 1)


class RssmVision(VisionModel):
    """The RSSM's encoder and posterior as V: ``z`` = [h, z_stoch]; ``decode`` is the
    decoder (vectors: symlog space, pixels: [0, 1] as [N, 3, H, W])."""

    def __init__(
        self, wm: DreamerWorldModel, pixels: bool, action_dim: int, scale: ActionScale
    ):  # fmt: skip
        super().__init__()
        self.wm, self.pixels, self.action_dim, self.scale = wm, pixels, action_dim, scale
        self.latent_dim = wm.feat_dim

    def preprocess(self, obs: Tensor) -> Tensor:
        if self.pixels:
            return obs.permute(0, 3, 1, 2).float() / 255.0
        return symlog(obs.float())

    def postprocess(self, x: Tensor) -> Tensor:
        if self.pixels:
            return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return symexp(x)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raw = self.postprocess(x) if self.pixels else symexp(x)
        return self.encode(raw)

    def decode(self, z: Tensor) -> Tensor:
        codec = self.wm.codec
        if isinstance(codec, PixelCodec):
            return codec._decode(z) + 0.5
        return codec.decoder(z)

    def _first(self, embed: Tensor) -> Tensor:
        """The posterior mode feature of embedded observations as episodes' first steps."""
        n = embed.shape[0]
        rssm = self.wm.rssm
        state = rssm.initial(n, embed.device)
        first = torch.ones(n, dtype=torch.bool, device=embed.device)
        zero = torch.zeros(n, self.action_dim, device=embed.device)
        state, _ = rssm.obs_step(state, zero, embed, first, mode=True)
        return state.feat()

    def encode(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Observations as the first steps of episodes -> (posterior mode feature, zeros)."""
        feat = self._first(self.wm.codec.encode(obs))
        return feat, torch.zeros_like(feat)

    def observe(self, obs: Tensor, memory_state: Any) -> Tensor:
        """Observations after ``RssmMemory``'s step -> the posterior mode filtered on:
        [h', z ~ post(h', embed)] with the step's deterministic state h' (the state's last
        column flags that a step was taken), an episode's first step where none was."""
        pred = memory_state[0]
        h, stepped = pred[:, :-1], pred[:, -1:] > 0.5
        embed = self.wm.codec.encode(obs)
        rssm = self.wm.rssm
        z = rssm.sample(rssm.post_net(torch.cat([h.to(embed.dtype), embed], -1)), mode=True)
        filtered = torch.cat([h, z], -1)
        if bool(stepped.all()):  # every step but an episode's first: no first-step encoding
            return filtered
        return torch.where(stepped, filtered, self._first(embed))

    def action_features(self, actions: Tensor) -> Tensor:
        """Stored env actions -> the RSSM's action inputs."""
        if self.scale.low is None:
            return F.one_hot(actions.long(), self.action_dim).float()
        return self.scale(actions)

    @torch.no_grad()
    def encode_episode(
        self, observations: Any, actions: Any, device: torch.device, batch_size: int = 256
    ) -> tuple[np.ndarray, np.ndarray]:
        """The posterior mode filtered along an episode: o_0..o_T and the env's actions
        a_0..a_{T-1} -> features [T+1, Z] (and zeros)."""
        obs = torch.as_tensor(np.asarray(observations), device=device)
        acts = self.action_features(torch.as_tensor(np.asarray(actions), device=device))
        embed = self.wm.codec.encode(obs)
        rssm = self.wm.rssm
        state = rssm.initial(1, device)
        prev = torch.zeros(1, self.action_dim, device=device)
        feats = []
        for t in range(len(obs)):
            first = torch.tensor([t == 0], device=device)
            state, _ = rssm.obs_step(state, prev, embed[t : t + 1], first, mode=True)
            feats.append(state.feat())
            if t < len(acts):
                prev = acts[t : t + 1]
        feat = torch.cat(feats).cpu().numpy()
        return feat, np.zeros_like(feat)

    def loss(self, obs: Tensor, beta: float, kl_tolerance: float, generator: Rng = None) -> Loss:
        raise TypeError("the RSSM is trained by `--method dreamer`, not as a separate V")


@dataclass
class RssmStep:
    """One prior step's output; ``next`` is the state [h', z'] once ``sample_next`` drew it."""

    h: Tensor
    logits: Tensor
    next: Tensor | None = None


class RssmMemory(MemoryModel):
    """The RSSM's prior as a Markov M over [h, z_stoch]: its state adds no feature (h is empty)
    and only keeps the last step's deterministic state h' with a flag that a step was taken
    ([B, deter + 1]), for V's posterior of the real observation that follows
    (``RssmVision.observe``)."""

    recurrent = False
    point_is_mean = False

    def __init__(self, wm: DreamerWorldModel, action_dim: int, scale: ActionScale):
        super().__init__()
        self.wm, self.scale = wm, scale
        self.latent_dim, self.action_dim = wm.feat_dim, action_dim

    @property
    def feature_dim(self) -> int:
        return 0

    def initial(self, batch: int, device: torch.device | str = "cpu") -> tuple[Tensor]:
        return (torch.zeros(batch, self.wm.rssm.deter + 1, device=device),)

    def hidden(self, state: tuple[Tensor]) -> Tensor:
        return state[0][:, :0]

    def step(self, z: Tensor, action: Tensor, state: Any) -> tuple[RssmStep, Any]:
        rssm = self.wm.rssm
        h = rssm._deter(_split(self.wm, z), self.scale(action))
        stepped = torch.cat([h, torch.ones_like(h[:, :1])], -1)
        return RssmStep(h, rssm.prior_net(h)), (stepped,)

    def sample_next(
        self, output: RssmStep, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        rssm = self.wm.rssm
        if temperature == 0:
            z = rssm.sample(output.logits, mode=True)
        else:
            probs = rssm.probs(output.logits / temperature)
            flat = probs.reshape(-1, rssm.classes).float().cpu()
            idx = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
            z = F.one_hot(idx.to(probs.device), rssm.classes).to(probs.dtype).flatten(-2)
        output.next = torch.cat([output.h, z], -1)
        return output.next

    def reward_done(self, output: RssmStep, z_next: Tensor) -> tuple[Tensor, Tensor]:
        if output.next is None:
            self.sample_next(output, 0.0)
        feat = output.next
        assert feat is not None
        return self.wm.reward_mean(feat), -self.wm.cont(feat).squeeze(-1)

    def step_loss(self, output: Any, z_next: Tensor, reward: Tensor, done: Tensor) -> Tensor:
        raise TypeError("the RSSM is trained by `--method dreamer`, not as a separate M")

    def loss(
        self, batch: Any, reward_weight: float = 1.0, done_weight: float = 1.0
    ) -> tuple[Tensor, dict[str, float]]:
        raise TypeError("the RSSM is trained by `--method dreamer`, not as a separate M")
