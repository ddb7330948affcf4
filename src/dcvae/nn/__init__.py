"""Neural building blocks shared by every model: encoder/decoder backbones and the discriminator."""

from dcvae.nn.backbones import BACKBONES, Backbone, ConditionalEncoder, Discriminator, build_backbone

__all__ = ["BACKBONES", "Backbone", "ConditionalEncoder", "Discriminator", "build_backbone"]
