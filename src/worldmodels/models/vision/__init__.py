"""Vision models (V): observation -> latent z. One protocol, one registry."""

from __future__ import annotations

from typing import Any

from torch import nn

from worldmodels.models.vision.conv_vae import ConvVAE
from worldmodels.models.vision.mlp_vae import MlpVAE

VISION_MODELS: dict[str, type[nn.Module]] = {"conv_vae": ConvVAE, "mlp_vae": MlpVAE}


def build_vision(name: str, kwargs: dict[str, Any]) -> nn.Module:
    return VISION_MODELS[name](**kwargs)
