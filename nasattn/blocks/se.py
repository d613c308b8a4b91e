"""Squeeze-and-Excitation (Hu et al. 2018): channel ("spectral") attention.

The module computes torchvision's ``SqueezeExcitation`` with a bias option (``nasattn.blocks.se_torchvision``);
it is imported when the first SE block is built, not when the registry is listed.
"""

from __future__ import annotations

from torch import nn

from nasattn.blocks.se_torchvision import SE
from nasattn.registry import register_block


@register_block("attention", "se")
def se(channels: int, reduction: int = 16, bias: bool = True, min_channels: int = 1) -> nn.Module:
    """Squeeze-Excitation channel attention (torchvision's function), squeeze width = channels // reduction."""
    return SE(channels, reduction, bias, min_channels)
