"""Encoder/decoder pairs (SPEC "Backbones") and the total-correlation discriminator.

Every encoder maps (x, one-hot c) to 2·d numbers (posterior mean and log-variance); every decoder
maps (z, one-hot c) to the parameters of p(x|z, c) with the input's shape. The condition enters as
a one-hot vector concatenated to the encoder's features and to z (SPEC "Notation"); unconditional
models pass a zero-width condition.

Scoring in marginal mode runs the encoder under every condition. Encoders therefore split into a
condition-free part (``condition_free``), run once per sample, and the rest (``conditioned``),
run once per condition: ``conditioned(condition_free(x), c)`` is ``forward(x, c)`` up to float
rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Backbone:
    encoder: nn.Module
    decoder: nn.Module


def _with_condition(h: Tensor, c_onehot: Tensor) -> Tensor:
    """h ⊕ c; h itself when there is no condition (a concatenation would copy the batch)."""
    return h if c_onehot.shape[1] == 0 else torch.cat([h, c_onehot], dim=1)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ConditionalEncoder(nn.Module):
    """An encoder (x, one-hot c) → 2·d. The default split does all the work under each condition;
    the library's encoders override it so that the condition-free part runs once."""

    def condition_free(self, x: Tensor) -> Tensor:
        return x

    def conditioned(self, h: Tensor, c_onehot: Tensor) -> Tensor:
        return self(h, c_onehot)


def _free_part(layers: nn.Sequential, h: Tensor, n_free: int) -> Tensor:
    """The pre-activation of ``layers``' first dense layer from its first ``n_free`` inputs ``h``
    alone, bias included (the condition's columns come after them)."""
    first = cast(nn.Linear, layers[0])
    return F.linear(h, first.weight[:, :n_free], first.bias)


def _with_condition_part(layers: nn.Sequential, h: Tensor, c_onehot: Tensor, n_free: int) -> Tensor:
    """``layers`` from the first one's condition-free pre-activation ``h``: the condition's columns
    added, then the remaining layers."""
    if c_onehot.shape[1] == 0:  # an unconditional encoder: nothing to add
        return layers[1:](h)
    first = cast(nn.Linear, layers[0])
    return layers[1:](h + F.linear(c_onehot, first.weight[:, n_free:]))


class MLPEncoder(ConditionalEncoder):
    """Flattened input ⊕ one-hot c → hidden → 2·d."""

    def __init__(self, input_shape: tuple[int, ...], n_conditions: int, hidden: tuple[int, ...],
                 latent_dim: int) -> None:
        super().__init__()
        self.n_inputs = math.prod(input_shape)
        self.net = _mlp([self.n_inputs + n_conditions, *hidden, 2 * latent_dim])

    def forward(self, x: Tensor, c_onehot: Tensor) -> Tensor:
        return self.net(_with_condition(x.flatten(1), c_onehot))

    def condition_free(self, x: Tensor) -> Tensor:
        return _free_part(self.net, x.flatten(1), self.n_inputs)

    def conditioned(self, h: Tensor, c_onehot: Tensor) -> Tensor:
        return _with_condition_part(self.net, h, c_onehot, self.n_inputs)


class MLPDecoder(nn.Module):
    """z ⊕ one-hot c → mirrored hidden → parameters of p(x|z,c) in the input's shape."""

    def __init__(self, input_shape: tuple[int, ...], n_conditions: int, hidden: tuple[int, ...],
                 latent_dim: int) -> None:
        super().__init__()
        self.input_shape = input_shape
        self.net = _mlp([latent_dim + n_conditions, *reversed(hidden), math.prod(input_shape)])

    def forward(self, z: Tensor, c_onehot: Tensor) -> Tensor:
        out = self.net(_with_condition(z, c_onehot))
        return out.view(-1, *self.input_shape)


def _halved(size: int) -> int:
    """Spatial size after Conv2d(kernel 4, stride 2, padding 1)."""
    return (size + 2 - 4) // 2 + 1


class ConvEncoder(ConditionalEncoder):
    """Conv32 s2 → Conv64 s2 → dense ⊕ one-hot c → 2·d, for any C×H×W with H, W ≥ 4."""

    def __init__(self, input_shape: tuple[int, ...], n_conditions: int, hidden: tuple[int, ...],
                 latent_dim: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        h2, w2 = _halved(_halved(height)), _halved(_halved(width))
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        self.n_features = 64 * h2 * w2
        self.head = _mlp([self.n_features + n_conditions, hidden[-1], 2 * latent_dim])

    def forward(self, x: Tensor, c_onehot: Tensor) -> Tensor:
        return self.head(_with_condition(self.features(x), c_onehot))

    def condition_free(self, x: Tensor) -> Tensor:
        """The convolutions and the image part of the dense layer after them: c enters there."""
        return _free_part(self.head, self.features(x), self.n_features)

    def conditioned(self, h: Tensor, c_onehot: Tensor) -> Tensor:
        return _with_condition_part(self.head, h, c_onehot, self.n_features)


class ConvDecoder(nn.Module):
    """Transposed mirror of ConvEncoder; output_padding restores odd sizes exactly."""

    def __init__(self, input_shape: tuple[int, ...], n_conditions: int, hidden: tuple[int, ...],
                 latent_dim: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        h1, w1 = _halved(height), _halved(width)
        h2, w2 = _halved(h1), _halved(w1)
        self.grid = (64, h2, w2)
        self.head = nn.Sequential(
            _mlp([latent_dim + n_conditions, hidden[-1], 64 * h2 * w2]), nn.ReLU()
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1,
                               output_padding=(h1 - 2 * h2, w1 - 2 * w2)),
            nn.ReLU(),
            nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1,
                               output_padding=(height - 2 * h1, width - 2 * w1)),
        )

    def forward(self, z: Tensor, c_onehot: Tensor) -> Tensor:
        h = self.head(_with_condition(z, c_onehot)).view(-1, *self.grid)
        if torch.is_grad_enabled() or torch.compiler.is_exporting():
            return self.deconv(h)
        # Scoring: the same function on faster kernels, 1.3x faster marginal scoring of the
        # default (benchmarks/decoder_layout.py). PyTorch's CPU transposed convolution converts
        # NCHW input at each call and takes channels-last input 1.3-1.4x faster (the same
        # numbers); the last one, with its few output channels, runs 2.1x faster as a
        # convolution by phases. Training keeps the plain layers: there the backward's
        # conversions cancelled the gain.
        first, relu, last = self.deconv
        h = relu(first(h.contiguous(memory_format=torch.channels_last)))
        return transposed_by_phases(cast(nn.ConvTranspose2d, last), h)


#: For ConvTranspose2d(kernel 4, stride 2, padding 1): the kernel row that links output row 2m + a
#: (phase a) to input row m + u - 1 (tap u of a 3×3 convolution), 4 where none does.
_PHASE_TAPS = torch.tensor([[3, 1, 4], [4, 2, 0]])


def transposed_by_phases(layer: nn.ConvTranspose2d, x: Tensor) -> Tensor:
    """``layer(x)`` for the decoder's transposed convolutions (kernel 4, stride 2, padding 1) as
    one 3×3 convolution whose 4·C_out channels are the four phases of the output (row and column
    parity), interleaved by ``pixel_shuffle``; equal up to float rounding. 2.25× the
    multiply-adds, but on the regular convolution's kernels."""
    if (layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.groups) != (
            (4, 4), (2, 2), (1, 1), (1, 1), 1):
        raise ValueError("transposed_by_phases takes transposed convolutions of kernel 4, stride 2 "
                         f"and padding 1 (no dilation or groups), got {layer}")
    op_h, op_w = layer.output_padding
    taps = _PHASE_TAPS.to(x.device)
    # (C_in, C_out, 4, 4), padded with zeros at index 4 → (C_out, a, b, C_in, u, v)
    weight = F.pad(layer.weight, (0, 1, 0, 1))[:, :, taps[:, None, :, None], taps[None, :, None, :]]
    kernel = weight.permute(1, 2, 3, 0, 4, 5).reshape(4 * layer.out_channels, layer.in_channels, 3, 3)
    bias = None if layer.bias is None else layer.bias.repeat_interleave(4)
    height, width = x.shape[-2:]
    if op_h or op_w:  # output_padding adds a row (column) at the end: one more row of phases
        x = F.pad(x, (0, op_w, 0, op_h))
    phases = F.conv2d(x, kernel, bias, padding=1)  # its own padding: no padded copy of x
    return F.pixel_shuffle(phases, 2)[..., :2 * height + op_h, :2 * width + op_w]


def _mlp_backbone(input_shape: tuple[int, ...], n_conditions: int, hidden: tuple[int, ...],
                  latent_dim: int, encoder_conditions: int) -> Backbone:
    return Backbone(MLPEncoder(input_shape, encoder_conditions, hidden, latent_dim),
                    MLPDecoder(input_shape, n_conditions, hidden, latent_dim))


def _conv_backbone(input_shape: tuple[int, ...], n_conditions: int, hidden: tuple[int, ...],
                   latent_dim: int, encoder_conditions: int) -> Backbone:
    if not fits_conv(input_shape):
        raise ValueError(
            f"the conv backbone needs images of shape (C, H, W) with H, W >= 4; got input shape "
            f"{input_shape}: use backbone='mlp' for feature vectors"
        )
    return Backbone(ConvEncoder(input_shape, encoder_conditions, hidden, latent_dim),
                    ConvDecoder(input_shape, n_conditions, hidden, latent_dim))


BACKBONES: dict[str, Callable[..., Backbone]] = {"mlp": _mlp_backbone, "conv": _conv_backbone}
#: A backbone setting that picks by the data's shape: see ``resolve_backbone``.
AUTO = "auto"


def fits_conv(input_shape: tuple[int, ...]) -> bool:
    """Whether the conv backbone can take samples of this shape: images (C, H, W), H, W >= 4."""
    return len(input_shape) == 3 and min(input_shape[1:]) >= 4


def resolve_backbone(name: str, input_shape: tuple[int, ...]) -> str:
    """``name``, with ``"auto"`` read as ``conv`` for images the conv backbone can take and ``mlp``
    for feature vectors (and images under 4×4)."""
    if name != AUTO:
        return name
    return "conv" if fits_conv(input_shape) else "mlp"


def build_backbone(name: str, input_shape: tuple[int, ...], n_conditions: int,
                   hidden: tuple[int, ...], latent_dim: int, *, encoder_conditions: int | None = None
                   ) -> Backbone:
    """The encoder/decoder pair registered under ``name``; the decoder sees ``n_conditions``, the
    encoder ``encoder_conditions`` (default the same; 0 for an encoder blind to c)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    enc = n_conditions if encoder_conditions is None else encoder_conditions
    return BACKBONES[name](input_shape, n_conditions, hidden, latent_dim, enc)


class Discriminator(nn.Module):
    """D(z) → 2 logits (true joint vs. permuted product of marginals); Kim & Mnih 2018.

    Its log-odds D(z)[0] - D(z)[1] estimate log q(z) / prod_k q(z_k), the total correlation.
    """

    def __init__(self, latent_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        n_in = latent_dim
        for n_out in hidden:
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(0.2)]
            n_in = n_out
        layers.append(nn.Linear(n_in, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)
