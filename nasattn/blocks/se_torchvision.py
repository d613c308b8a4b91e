"""torchvision's ``SqueezeExcitation`` with nasattn's pooling, bias option and the author's init."""

from __future__ import annotations

from torch import nn
from torchvision.ops import SqueezeExcitation

from nasattn.blocks.pooling import GlobalMeanPool


class SE(SqueezeExcitation):
    """Squeeze-Excitation channel attention (torchvision's), squeeze width = channels // reduction."""

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True, min_channels: int = 1) -> None:
        squeeze = max(min_channels, channels // reduction)
        super().__init__(channels, squeeze)
        self.avgpool = GlobalMeanPool()  # same values; its gradient keeps channels_last (blocks/pooling.py)
        if not bias:  # the paper author's SE uses bias-free linear layers
            self.fc1 = nn.Conv2d(channels, squeeze, 1, bias=False)
            self.fc2 = nn.Conv2d(squeeze, channels, 1, bias=False)

    def init_paper(self) -> None:
        """The author's SE init: its two layers are ``nn.Linear``, drawn N(0, 0.01) (gates start near 0.5)."""
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, 0, 0.01)
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)
