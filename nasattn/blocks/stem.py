"""Stems: what the network applies to the image before the first stage."""

from __future__ import annotations

from torch import nn

from nasattn.blocks.conv import conv_bn, make_activation
from nasattn.registry import register_block


@register_block("stem", "conv")
class ConvStem(nn.Sequential):
    """k x k conv + BatchNorm + activation (3x3, stride 1 by default: 64x64 tiles need no early downsampling)."""

    num_convs = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, activation: str = "relu") -> None:
        super().__init__(*conv_bn(in_channels, out_channels, kernel_size, stride), make_activation(activation))


@register_block("stem", "none")
class NoStem(nn.Identity):
    """No stem: the first stage sees the image."""

    num_convs = 0

    def __init__(self, in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
