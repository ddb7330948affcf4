"""Neural building blocks shared by every model: encoder/decoder backbones and the discriminator."""

from dcvae.nn.backbones import (
    AUTO,
    BACKBONES,
    Backbone,
    ConditionalEncoder,
    Discriminator,
    build_backbone,
    resolve_backbone,
)

__all__ = ["AUTO", "BACKBONES", "Backbone", "ConditionalEncoder", "Discriminator", "build_backbone",
           "resolve_backbone"]
