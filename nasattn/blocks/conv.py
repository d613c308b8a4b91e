"""Conv blocks of a stage: plain, double-conv and residual.

Every block is called by the builder as ``block(in_channels, out_channels, stride=..., attention=...,
drop_prob=..., block_size=...)``; ``attention`` is an already built module (identity for none).
Max-pool downsampling lives in the stage, stride-2 downsampling is the ``stride`` of a stage's first block.
``num_convs`` is the number of main-path convolutions, used for the ``conv_layers`` count.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from nasattn.blocks.dropblock import make_dropblock
from nasattn.registry import register_block

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]() if name != "relu" else nn.ReLU(inplace=True)


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, bias: bool = False) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=bias), nn.BatchNorm2d(cout)]


class _ConvStack(nn.Sequential):
    """``num_convs`` x (3x3 conv, BatchNorm, activation), then attention and DropBlock."""

    num_convs: ClassVar[int] = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        attention: nn.Module | None = None,
        drop_prob: float = 0.0,
        block_size: int = 7,
        activation: str = "relu",
        conv_bias: bool = False,
    ) -> None:
        layers: list[nn.Module] = []
        for i in range(self.num_convs):
            layers += [*conv_bn(in_channels if i == 0 else out_channels, out_channels, 3, stride if i == 0 else 1,
                                conv_bias), make_activation(activation)]
        super().__init__(*layers, attention or nn.Identity(), make_dropblock(drop_prob, block_size))


@register_block("conv", "plain")
class PlainBlock(_ConvStack):
    """3x3 conv, BatchNorm, activation, then attention and DropBlock."""

    num_convs: ClassVar[int] = 1


@register_block("conv", "double")
class DoubleConvBlock(_ConvStack):
    """Two 3x3 conv + BatchNorm + activation, then attention and DropBlock (VGG-style)."""

    num_convs: ClassVar[int] = 2


@register_block("conv", "residual")
class ResidualBlock(nn.Module):
    """Basic residual block: conv-BN-act, DropBlock, conv-BN, attention, + shortcut, act.

    The shortcut is a 1x1 conv + BN projection when the stride or the width changes.
    """

    num_convs: ClassVar[int] = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        attention: nn.Module | None = None,
        drop_prob: float = 0.0,
        block_size: int = 7,
        activation: str = "relu",
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(in_channels, out_channels, 3, stride, conv_bias)
        self.act1 = make_activation(activation)
        self.dropblock = make_dropblock(drop_prob, block_size)
        self.conv2, self.bn2 = conv_bn(out_channels, out_channels, 3, 1, conv_bias)
        self.attention = attention or nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(*conv_bn(in_channels, out_channels, 1, stride, False))
            self.shortcut[0].padding = (0, 0)
        self.act2 = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropblock(self.act1(self.bn1(self.conv1(x))))
        out = self.attention(self.bn2(self.conv2(out)))
        return self.act2(out + self.shortcut(x))
