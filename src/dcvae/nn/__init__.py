"""Neural building blocks shared by every model: encoder/decoder backbones and the discriminator."""

from dcvae.nn.backbones import BACKBONES, Backbone, Discriminator, build_backbone

__all__ = ["BACKBONES", "Backbone", "Discriminator", "build_backbone"]
