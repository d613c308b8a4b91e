"""Squeeze-Excitation as torchvision's ``SqueezeExcitation`` computes it, with the options it lacks.

``torchvision.ops.SqueezeExcitation(input_channels, squeeze_channels, activation, scale_activation)``
has no argument for bias-free layers (the paper author's SE) nor for the pooling (nasattn's
:class:`~nasattn.blocks.pooling.GlobalMeanPool` keeps a channels_last gradient dense), and subclassing
it would mean replacing its layers after construction. So the module is built here with torchvision's
layout: the same submodule names (``avgpool``, ``fc1``, ``fc2``, ``activation``, ``scale_activation``),
hence the same state_dict keys, and the same function (``tests/test_seams.py`` checks it against
torchvision's module on the same weights).
"""

from __future__ import annotations

import torch
from torch import nn

from nasattn.blocks.pooling import GlobalMeanPool


class SE(nn.Module):
    """Squeeze-Excitation channel attention, squeeze width = max(min_channels, channels // reduction)."""

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True, min_channels: int = 1) -> None:
        super().__init__()
        squeeze = max(min_channels, channels // reduction)
        self.avgpool = GlobalMeanPool()
        self.fc1 = nn.Conv2d(channels, squeeze, 1, bias=bias)
        self.fc2 = nn.Conv2d(squeeze, channels, 1, bias=bias)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x

    def init_paper(self) -> None:
        """The author's SE init: its two layers are ``nn.Linear``, drawn N(0, 0.01) (gates start near 0.5)."""
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, 0, 0.01)
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)
