"""Classifier heads, each with dropout; ``hidden`` and ``conv_width`` scale with the width multiplier."""

from __future__ import annotations

from torch import nn

from nasattn.blocks.conv import conv_bn, make_activation
from nasattn.registry import register_block


def _mlp(in_features: int, hidden: int, num_classes: int, activation: str, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(in_features, hidden)]
    if activation != "none":
        layers.append(make_activation(activation))
    return [*layers, nn.Dropout(dropout), nn.Linear(hidden, num_classes)]


def _pre_conv(in_channels: int, conv_width: int) -> tuple[list[nn.Module], int]:
    """Optional 1x1 conv + BN + ReLU before pooling (the cbam preset's 7th layer)."""
    if conv_width <= 0:
        return [], in_channels
    conv, bn = conv_bn(in_channels, conv_width, 1, bias=True)
    return [conv, bn, nn.ReLU(inplace=True)], conv_width


@register_block("head", "flatten_mlp")
class FlattenMLP(nn.Sequential):
    """Flatten the feature map -> linear ``hidden`` -> activation -> dropout -> linear."""

    def __init__(
        self, in_channels: int, num_classes: int, in_shape: tuple[int, int, int] = (0, 1, 1),
        hidden: int = 512, dropout: float = 0.5, activation: str = "relu",
    ) -> None:
        _, h, w = in_shape
        super().__init__(nn.Flatten(), *_mlp(in_channels * h * w, hidden, num_classes, activation, dropout))


@register_block("head", "gap_mlp")
class GapMLP(nn.Sequential):
    """[1x1 conv] -> global average pool -> linear ``hidden`` -> activation -> dropout -> linear."""

    def __init__(
        self, in_channels: int, num_classes: int, in_shape: tuple[int, int, int] = (0, 1, 1),
        hidden: int = 256, dropout: float = 0.4, activation: str = "relu", conv_width: int = 0,
    ) -> None:
        pre, c = _pre_conv(in_channels, conv_width)
        super().__init__(*pre, nn.AdaptiveAvgPool2d(1), nn.Flatten(), *_mlp(c, hidden, num_classes, activation, dropout))


@register_block("head", "gap_linear")
class GapLinear(nn.Sequential):
    """[1x1 conv] -> global average pool -> dropout -> linear."""

    def __init__(
        self, in_channels: int, num_classes: int, in_shape: tuple[int, int, int] = (0, 1, 1),
        dropout: float = 0.5, conv_width: int = 0,
    ) -> None:
        pre, c = _pre_conv(in_channels, conv_width)
        super().__init__(*pre, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_classes))
