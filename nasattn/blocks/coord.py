"""Coordinate Attention (Hou et al., CVPR 2021): spatial attention factorised along H and W."""

import torch
from torch import nn

from nasattn.blocks.pooling import mean_pool
from nasattn.registry import register_block


@register_block("attention", "coord")
class CoordAttention(nn.Module):
    """Coordinate attention: pools along H and W, a shared 1x1 conv, then one sigmoid gate per axis."""

    def __init__(self, channels: int, reduction: int = 8, min_channels: int = 1, bias: bool = False) -> None:
        super().__init__()
        mid = max(min_channels, channels // reduction)
        self.conv1 = nn.Conv2d(channels, mid, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act = nn.ReLU(inplace=True)
        self.conv_h = nn.Conv2d(mid, channels, 1, bias=bias)
        self.conv_w = nn.Conv2d(mid, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x_h = mean_pool(x, (3,))  # N,C,H,1
        x_w = mean_pool(x, (2,)).transpose(2, 3)  # N,C,W,1
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = self.conv_h(y_h).sigmoid()
        a_w = self.conv_w(y_w.transpose(2, 3)).sigmoid()
        return x * a_h * a_w
