"""CBAM (Woo et al., ECCV 2018): channel attention, then spatial attention."""

import torch
from torch import nn

from nasattn.blocks.pooling import mean_pool
from nasattn.registry import register_block


class ChannelGate(nn.Module):
    """CBAM's channel gate: a shared MLP over average- and max-pooled descriptors."""

    def __init__(self, channels: int, reduction: int = 16, bias: bool = False, min_channels: int = 1) -> None:
        super().__init__()
        mid = max(min_channels, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, mid, bias=bias), nn.ReLU(inplace=True), nn.Linear(mid, channels, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.mlp(mean_pool(x, (2, 3)).flatten(1)) + self.mlp(x.amax(dim=(2, 3)))
        return x * gate.sigmoid()[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM's spatial gate: a k x k conv over channel-wise mean and max maps."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.conv(pooled).sigmoid()


@register_block("attention", "cbam")
class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel gate then spatial gate."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, bias: bool = False, min_channels: int = 1) -> None:
        super().__init__()
        self.channel = ChannelGate(channels, reduction, bias, min_channels)
        self.spatial = SpatialGate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


@register_block("attention", "spatial_gate")
class SpatialOnly(SpatialGate):
    """CBAM's spatial gate alone (a light spatial attention)."""

    def __init__(self, channels: int = 0, kernel_size: int = 7) -> None:
        super().__init__(kernel_size)
