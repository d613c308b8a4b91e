"""Squeeze-and-Excitation (Hu et al. 2018): channel ("spectral") attention."""

from torch import nn
from torchvision.ops import SqueezeExcitation

from nasattn.blocks.pooling import GlobalMeanPool
from nasattn.registry import register_block


@register_block("attention", "se")
class SE(SqueezeExcitation):
    """Squeeze-Excitation channel attention (torchvision's), squeeze width = channels // reduction."""

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True, min_channels: int = 1) -> None:
        squeeze = max(min_channels, channels // reduction)
        super().__init__(channels, squeeze)
        self.avgpool = GlobalMeanPool()  # same values; its gradient keeps channels_last (blocks/pooling.py)
        if not bias:  # the paper author's SE uses bias-free linear layers
            self.fc1 = nn.Conv2d(channels, squeeze, 1, bias=False)
            self.fc2 = nn.Conv2d(squeeze, channels, 1, bias=False)
