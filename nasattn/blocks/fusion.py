"""Fusion strategies: combine a spatial and a channel attention branch into one "balanced" block.

The paper's balanced attention is ``learnable_alpha`` with Coordinate Attention as the spatial
branch and Squeeze-Excitation as the channel branch: y = s*coord(x) + (1-s)*se(x), s = sigmoid(a).
"""

from __future__ import annotations

import torch
from torch import nn

from nasattn.registry import create_block, register_block


class _Fusion(nn.Module):
    def __init__(self, spatial: nn.Module, channel: nn.Module) -> None:
        super().__init__()
        self.spatial = spatial
        self.channel = channel


@register_block("fusion", "learnable_alpha")
class LearnableAlpha(_Fusion):
    """y = s*spatial(x) + (1-s)*channel(x) with s = sigmoid(a), a learnable scalar initialised at ``init``."""

    def __init__(self, channels: int, spatial: nn.Module, channel: nn.Module, init: float = 0.5) -> None:
        super().__init__(spatial, channel)
        self.alpha = nn.Parameter(torch.tensor(float(init)))

    @property
    def weight(self) -> float:
        """The mixing weight s = sigmoid(a) of the spatial branch (the paper's reported "alpha")."""
        return float(torch.sigmoid(self.alpha.detach()).item())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.alpha)
        return s * self.spatial(x) + (1 - s) * self.channel(x)


@register_block("fusion", "fixed_alpha")
class FixedAlpha(_Fusion):
    """y = alpha*spatial(x) + (1-alpha)*channel(x) with a constant alpha."""

    def __init__(self, channels: int, spatial: nn.Module, channel: nn.Module, alpha: float = 0.5) -> None:
        super().__init__(spatial, channel)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.fixed = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fixed * self.spatial(x) + (1 - self.fixed) * self.channel(x)


@register_block("fusion", "gate")
class ChannelGateFusion(_Fusion):
    """y = g*spatial(x) + (1-g)*channel(x) with g = sigmoid(w), a learned weight per channel."""

    def __init__(self, channels: int, spatial: nn.Module, channel: nn.Module, init: float = 0.0) -> None:
        super().__init__(spatial, channel)
        self.logits = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.logits)[None, :, None, None]
        return g * self.spatial(x) + (1 - g) * self.channel(x)


@register_block("fusion", "sum")
class SumFusion(_Fusion):
    """y = spatial(x) + channel(x)."""

    def __init__(self, channels: int, spatial: nn.Module, channel: nn.Module) -> None:
        super().__init__(spatial, channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(x) + self.channel(x)


@register_block("fusion", "concat")
class ConcatFusion(_Fusion):
    """y = conv1x1(concat(spatial(x), channel(x))), mapping 2C channels back to C."""

    def __init__(self, channels: int, spatial: nn.Module, channel: nn.Module) -> None:
        super().__init__(spatial, channel)
        self.project = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([self.spatial(x), self.channel(x)], dim=1))


@register_block("fusion", "sequential_sc")
class SpatialThenChannel(_Fusion):
    """y = channel(spatial(x))."""

    def __init__(self, channels: int, spatial: nn.Module, channel: nn.Module) -> None:
        super().__init__(spatial, channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel(self.spatial(x))


@register_block("fusion", "sequential_cs")
class ChannelThenSpatial(_Fusion):
    """y = spatial(channel(x))."""

    def __init__(self, channels: int, spatial: nn.Module, channel: nn.Module) -> None:
        super().__init__(spatial, channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


@register_block("attention", "fusion")
def fusion_attention(
    channels: int,
    strategy: str = "learnable_alpha",
    spatial: dict | None = None,
    channel: dict | None = None,
    **strategy_params: object,
) -> nn.Module:
    """A spatial and a channel attention combined by a fusion strategy (the paper's "balanced" block)."""
    def branch(cfg: dict | None, default: dict) -> nn.Module:
        cfg = dict(cfg or default)
        return create_block("attention", cfg.pop("type"), channels, **cfg)

    sp = branch(spatial, {"type": "coord", "reduction": 8})
    ch = branch(channel, {"type": "se", "reduction": 16})
    return create_block("fusion", strategy, channels, sp, ch, **strategy_params)
