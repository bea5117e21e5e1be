"""A DreamerV3-class world model (Hafner et al. 2023): a recurrent state-space model (RSSM)
with a deterministic GRU state h and a stochastic state z of ``groups`` categorical variables
of ``classes`` classes each, an encoder / decoder (MLP on symlog vectors, CNN on 64x64
frames), a reward head (two-hot cross-entropy over symlog-spaced bins, zero-initialised) and
a continue head (Bernoulli).

Sequence layout (the one DreamerV3 replays): step t holds the observation o_t, the action
a_{t-1} that led to it, the reward r_{t-1} received on the way, ``is_first`` (o_t starts an
episode: the state is reset) and ``is_terminal`` (o_t is terminal).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def symlog(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


def identity(x: Tensor) -> Tensor:
    return x


class TwoHot(nn.Module):
    """A scalar as a distribution over ``bins`` bins evenly spaced in symlog space: targets
    are two-hot (the two nearest bins, weighted by distance), the prediction is the
    probability-weighted bin, mapped back with symexp."""

    def __init__(self, bins: int = 255, low: float = -20.0, high: float = 20.0):
        super().__init__()
        self.register_buffer("edges", torch.linspace(low, high, bins))

    def target(self, y: Tensor) -> Tensor:
        """[...] raw values -> [..., bins] two-hot weights."""
        edges: Tensor = self.edges  # type: ignore[assignment]
        x = symlog(y).clamp(edges[0], edges[-1])
        above = torch.bucketize(x, edges).clamp(1, len(edges) - 1)
        below = above - 1
        w_above = (x - edges[below]) / (edges[above] - edges[below])
        out = torch.zeros(*x.shape, len(edges), device=x.device, dtype=x.dtype)
        out.scatter_(-1, below.unsqueeze(-1), (1 - w_above).unsqueeze(-1))
        out.scatter_add_(-1, above.unsqueeze(-1), w_above.unsqueeze(-1))
        return out

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of the logits (read in float32) against y's two-hot target, [...]."""
        return -(self.target(y.float()) * F.log_softmax(logits.float(), -1)).sum(-1)

    def mean(self, logits: Tensor) -> Tensor:
        edges: Tensor = self.edges  # type: ignore[assignment]
        return symexp((F.softmax(logits.float(), -1) * edges).sum(-1))


def mixed_softmax(logits: Tensor, unimix: float) -> Tensor:
    """Softmax over the last axis mixed with ``unimix`` of the uniform distribution. Written
    out: ``F.softmax`` over a last axis of a few classes is ~5x slower on CPU."""
    e = (logits - logits.amax(-1, keepdim=True)).exp()
    return (1 - unimix) * e / e.sum(-1, keepdim=True) + unimix / logits.shape[-1]


def inverse_cdf(probs: Tensor, mode: bool = False) -> Tensor:
    """One-hot draws [..., C] from categorical probabilities [..., C] (their argmax with
    ``mode``): the first class whose cumulative probability passes a uniform number. Written
    out: ``F.one_hot`` checks its indices' range and ``torch.multinomial`` sorts, each several
    times this cost on small batches."""
    classes = torch.arange(probs.shape[-1], device=probs.device)
    if mode:
        idx = probs.argmax(-1, keepdim=True)
    else:
        u = torch.rand(*probs.shape[:-1], 1, device=probs.device, dtype=probs.dtype)
        idx = (probs.cumsum(-1) < u).sum(-1, keepdim=True).clamp_(max=probs.shape[-1] - 1)
    return (idx == classes).to(probs.dtype)


class Mlp(nn.Sequential):
    """Hidden layers, then an output Linear that runs in float32 under autocast: its outputs
    feed softmaxes, sigmoids and symexp, where a bf16 logit (8 bits of mantissa) would move a
    predicted return by percents. The hidden layers, most of the work, run in bf16."""

    def forward(self, x: Tensor) -> Tensor:
        *hidden, last = self._modules.values()
        for layer in hidden:
            x = layer(x)
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return last(x.float())
        return last(x)


def mlp(inp: int, hidden: int, layers: int, out: int | None = None) -> nn.Sequential:
    """``layers`` x (Linear, LayerNorm, SiLU), then a Linear to ``out`` if given (``Mlp``)."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(inp if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.SiLU()]
    if out is None:
        return nn.Sequential(*mods)
    return Mlp(*mods, nn.Linear(hidden if layers else inp, out))


def zero_output(net: nn.Sequential) -> None:
    """Zero the last layer of an MLP (its output starts at 0)."""
    last = net[-1]
    assert isinstance(last, nn.Linear)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


class VectorCodec(nn.Module):
    """MLP encoder of symlog(obs) and MLP decoder predicting symlog(obs) (symlog-MSE); with
    ``symlog_obs`` False, of the raw observation (MSE): symlog squeezes large magnitudes, and
    with them the precision there (x = 2.4 is resolved 3.4x more coarsely than x = 0)."""

    def __init__(self, obs_dim: int, feat_dim: int, hidden: int, layers: int, symlog_obs: bool):
        super().__init__()
        self.encoder = mlp(obs_dim, hidden, layers)
        self.decoder = mlp(feat_dim, hidden, layers, obs_dim)
        self.embed_dim = hidden
        self.squash, self.unsquash = (symlog, symexp) if symlog_obs else (identity, identity)

    def encode(self, obs: Tensor) -> Tensor:
        return self.encoder(self.squash(obs.float()))

    def recon_loss(self, feat: Tensor, obs: Tensor) -> Tensor:
        return ((self.decoder(feat) - self.squash(obs.float())) ** 2).sum(-1)

    def decode(self, feat: Tensor) -> Tensor:
        return self.unsquash(self.decoder(feat))


def pixel_stages(size: int) -> int:
    """Stride-2 stages from size x size frames down to 4x4; size must be a power of 2, >= 8."""
    if size < 8 or size & (size - 1):
        raise ValueError(f"frames must be a power of 2 pixels wide, >= 8, not {size}")
    return size.bit_length() - 3


class PixelCodec(nn.Module):
    """CNN encoder of square RGB frames (stride-2 convs from size x size down to 4x4, depth
    d, 2d, ...: four stages at 64x64, three at 32x32, as DreamerV3's minres) and a transposed-
    CNN decoder back up, MSE on pixels in [-0.5, 0.5]."""

    def __init__(self, channels: int, feat_dim: int, depth: int, size: int = 64):
        super().__init__()
        stages = pixel_stages(size)
        widths = [depth * 2**i for i in range(stages)]
        self.encoder = nn.Sequential(
            *(m for a, b in pairwise([channels, *widths]) for m in self._block(a, b)),
            nn.Flatten(),
        )
        self.top = widths[-1]
        self.embed_dim = self.top * 4 * 4
        self.from_feat = nn.Linear(feat_dim, self.embed_dim)
        ups = widths[::-1]
        self.decoder = nn.Sequential(
            *(m for a, b in pairwise(ups) for m in self._block(a, b, up=True)),
            nn.ConvTranspose2d(depth, channels, 4, 2, 1),
        )

    @staticmethod
    def _block(inp: int, out: int, up: bool = False) -> list[nn.Module]:
        conv = nn.ConvTranspose2d if up else nn.Conv2d
        return [conv(inp, out, 4, 2, 1), nn.GroupNorm(1, out), nn.SiLU()]

    @staticmethod
    def _pixels(obs: Tensor) -> Tensor:
        """[..., H, W, C] uint8 -> [N, C, H, W] in [-0.5, 0.5]."""
        return obs.reshape(-1, *obs.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0 - 0.5

    def encode(self, obs: Tensor) -> Tensor:
        return self.encoder(self._pixels(obs)).reshape(*obs.shape[:-3], self.embed_dim)

    def _decode(self, feat: Tensor) -> Tensor:
        x = self.from_feat(feat.reshape(-1, feat.shape[-1]))
        return self.decoder(x.reshape(-1, self.top, 4, 4))

    def recon_loss(self, feat: Tensor, obs: Tensor) -> Tensor:
        err = (self._decode(feat) - self._pixels(obs)) ** 2
        return err.flatten(1).sum(-1).reshape(feat.shape[:-1])

    def decode(self, feat: Tensor) -> Tensor:
        x = (self._decode(feat) + 0.5).clamp(0, 1) * 255
        return x.round().to(torch.uint8).permute(0, 2, 3, 1).reshape(*feat.shape[:-1], -1)


@dataclass
class RssmState:
    """h: [N, deter]; z: [N, groups * classes] (one-hot samples, straight-through)."""

    h: Tensor
    z: Tensor

    def feat(self) -> Tensor:
        return torch.cat([self.h, self.z], -1)

    def detach(self) -> RssmState:
        return RssmState(self.h.detach(), self.z.detach())


class Rssm(nn.Module):
    """h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}]); prior p(z_t | h_t); posterior q(z_t | h_t, e_t)."""

    def __init__(
        self,
        embed_dim: int,
        action_dim: int,
        deter: int,
        groups: int,
        classes: int,
        hidden: int,
        unimix: float = 0.01,
    ):
        super().__init__()
        self.deter, self.groups, self.classes, self.unimix = deter, groups, classes, unimix
        self.stoch = groups * classes
        self.img_in = mlp(self.stoch + action_dim, hidden, 1)
        self.gru = nn.GRUCell(hidden, deter)
        self.prior_net = mlp(deter, hidden, 1, self.stoch)
        self.post_net = mlp(deter + embed_dim, hidden, 1, self.stoch)

    def initial(self, n: int, device: torch.device) -> RssmState:
        return RssmState(
            torch.zeros(n, self.deter, device=device), torch.zeros(n, self.stoch, device=device)
        )

    def probs(self, logits: Tensor) -> Tensor:
        """[N, groups * classes] logits -> [N, groups, classes] probabilities, 1% uniform mix."""
        return mixed_softmax(logits.reshape(*logits.shape[:-1], self.groups, self.classes),
                             self.unimix)  # fmt: skip

    def sample(self, logits: Tensor, mode: bool = False) -> Tensor:
        """A one-hot per group with straight-through gradients, flattened: its value is the
        one-hot's exactly (``p - p.detach()`` is 0), with or without a graph."""
        p = self.probs(logits)
        onehot = inverse_cdf(p, mode)
        if p.requires_grad:
            onehot = onehot + (p - p.detach())
        return onehot.flatten(-2)

    def _deter(self, state: RssmState, action: Tensor) -> Tensor:
        return self.gru(self.img_in(torch.cat([state.z, action], -1)), state.h)

    def img_step(self, state: RssmState, action: Tensor) -> tuple[RssmState, Tensor]:
        """One step of the prior (imagination) -> (state, prior logits)."""
        h = self._deter(state, action)
        logits = self.prior_net(h)
        return RssmState(h, self.sample(logits)), logits

    def obs_step(
        self, state: RssmState, action: Tensor, embed: Tensor, is_first: Tensor, mode: bool = False
    ) -> tuple[RssmState, Tensor]:
        """One filtering step -> (posterior state, posterior logits); the prior's logits are
        ``prior_net(state.h)``. Where ``is_first``, the previous state and action are reset
        to zero."""
        keep = (~is_first).float().unsqueeze(-1)
        state = RssmState(state.h * keep, state.z * keep)
        h = self._deter(state, action * keep)
        post_logits = self.post_net(torch.cat([h, embed], -1))
        return RssmState(h, self.sample(post_logits, mode)), post_logits

    def observe(
        self, embed: Tensor, actions: Tensor, is_first: Tensor, state: RssmState
    ) -> tuple[RssmState, Tensor, Tensor]:
        """Filter [B, T] sequences -> (states [B, T, ...], posterior and prior logits); the
        prior runs once on all T deterministic states (it does not feed the recurrence). The
        same steps as ``obs_step``, with the inputs known in advance moved out of the loop: the
        actions' share of the GRU input layer and the embeddings' share of the posterior's
        first layer are one matmul each over all T (time-major, so each step reads a
        contiguous slice)."""
        keep = (~is_first).to(embed.dtype).transpose(0, 1).unsqueeze(-1)  # [T, B, 1]
        img_first, post_first = self.img_in[0], self.post_net[0]
        assert isinstance(img_first, nn.Linear) and isinstance(post_first, nn.Linear)
        w_z, w_a = img_first.weight.split([self.stoch, actions.shape[-1]], 1)
        w_h, w_e = post_first.weight.split([self.deter, embed.shape[-1]], 1)
        a_share = F.linear(actions.transpose(0, 1) * keep, w_a, img_first.bias)
        e_share = F.linear(embed.transpose(0, 1), w_e, post_first.bias)
        w_z, w_h = w_z.t(), w_h.t()
        img_rest, post_rest = self.img_in[1:], self.post_net[1:]
        h, z = state.h, state.z
        hs, zs, posts = [], [], []
        for t in range(embed.shape[1]):
            h, z = h * keep[t], z * keep[t]
            h = self.gru(img_rest(torch.addmm(a_share[t], z, w_z)), h)
            post = post_rest(torch.addmm(e_share[t], h, w_h))
            z = self.sample(post)
            hs.append(h)
            zs.append(z)
            posts.append(post)
        stack = lambda xs: torch.stack(xs, 1)  # noqa: E731
        h = stack(hs)
        return RssmState(h, stack(zs)), stack(posts), self.prior_net(h)

    def kl(self, lhs_logits: Tensor, rhs_logits: Tensor) -> Tensor:
        """KL(lhs || rhs), summed over the groups, [...]."""
        p, q = self.probs(lhs_logits), self.probs(rhs_logits)
        return (p * (p.log() - q.log())).sum((-2, -1))


DEFAULT_SCALES = {"dec": 1.0, "rew": 1.0, "cont": 1.0, "dyn": 0.5, "rep": 0.1}
"""The world-model loss parts and their weights (DreamerV3's; the keys are the loss dict's)."""


@dataclass
class WorldModelLoss:
    total: Tensor
    parts: dict[str, Tensor]
    states: RssmState
    """The posterior states of the batch, [B, T, ...] (imagination starts here)."""


class DreamerWorldModel(nn.Module):
    """Encoder + RSSM + decoder + reward and continue heads, one loss."""

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        pixels: bool,
        action_dim: int,
        deter: int = 256,
        groups: int = 16,
        classes: int = 16,
        hidden: int = 256,
        layers: int = 2,
        cnn_depth: int = 16,
        bins: int = 255,
        unimix: float = 0.01,
        free_nats: float = 1.0,
        loss_scales: dict[str, float] | None = None,
        symlog_obs: bool = True,
    ):
        super().__init__()
        self.kwargs: dict[str, Any] = {
            k: v for k, v in locals().items() if k not in ("self", "__class__")
        }
        feat_dim = deter + groups * classes
        self.codec: VectorCodec | PixelCodec = (
            PixelCodec(obs_shape[-1], feat_dim, cnn_depth, int(obs_shape[0]))
            if pixels
            else VectorCodec(int(obs_shape[0]), feat_dim, hidden, layers, symlog_obs)
        )
        self.rssm = Rssm(self.codec.embed_dim, action_dim, deter, groups, classes, hidden, unimix)
        self.reward = mlp(feat_dim, hidden, layers, bins)
        self.cont = mlp(feat_dim, hidden, layers, 1)
        zero_output(self.reward)  # predicts 0 at first (DreamerV3)
        self.twohot = TwoHot(bins)
        self.feat_dim, self.free_nats = feat_dim, free_nats
        self.scales = dict(loss_scales or DEFAULT_SCALES)
        if set(self.scales) != set(DEFAULT_SCALES):
            raise ValueError(
                f"loss scales {sorted(self.scales)} != losses {sorted(DEFAULT_SCALES)}"
            )

    def reward_mean(self, feat: Tensor) -> Tensor:
        return self.twohot.mean(self.reward(feat))

    def cont_prob(self, feat: Tensor) -> Tensor:
        return torch.sigmoid(self.cont(feat).squeeze(-1).float())  # bf16 cannot hold 0.998

    def loss(self, batch: dict[str, Tensor]) -> WorldModelLoss:
        """The world-model loss of a [B, T] batch (keys obs, action, reward, is_first,
        is_terminal), each part averaged over B and T."""
        embed = self.codec.encode(batch["obs"])
        b = embed.shape[0]
        start = self.rssm.initial(b, embed.device)
        states, post, prior = self.rssm.observe(embed, batch["action"], batch["is_first"], start)
        feat = states.feat()
        rssm = self.rssm
        dyn = rssm.kl(post.detach(), prior).clamp(min=self.free_nats)
        rep = rssm.kl(post, prior.detach()).clamp(min=self.free_nats)
        cont_target = 1.0 - batch["is_terminal"].float()
        parts = {
            "dec": self.codec.recon_loss(feat, batch["obs"]),
            "rew": self.twohot.loss(self.reward(feat), batch["reward"]),
            "cont": F.binary_cross_entropy_with_logits(
                self.cont(feat).squeeze(-1), cont_target, reduction="none"
            ),
            "dyn": dyn,
            "rep": rep,
        }
        means = {k: v.mean() for k, v in parts.items()}
        total = sum(self.scales[k] * v for k, v in means.items())
        means["kl"] = rssm.kl(post, prior).mean().detach()
        return WorldModelLoss(total, means, states)  # type: ignore[arg-type]
