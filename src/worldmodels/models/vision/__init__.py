"""Vision models (V): observation -> latent z. One protocol, one registry."""

from __future__ import annotations

from typing import Any

from worldmodels.models.vision.base import VisionModel
from worldmodels.models.vision.conv_vae import ConvVAE
from worldmodels.models.vision.identity import IdentityVision
from worldmodels.models.vision.mlp_ae import MlpAE
from worldmodels.models.vision.mlp_vae import MlpVAE
from worldmodels.models.vision.vq_vae import VQVAE

VISION_MODELS: dict[str, type[VisionModel]] = {
    "conv_vae": ConvVAE,
    "mlp_vae": MlpVAE,
    "identity": IdentityVision,
    "mlp_ae": MlpAE,
    "vq_vae": VQVAE,
}


def build_vision(name: str, kwargs: dict[str, Any]) -> VisionModel:
    return VISION_MODELS[name](**kwargs)
