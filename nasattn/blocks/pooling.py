"""Mean pooling whose gradient keeps the input's memory format.

``x.mean(dims, keepdim=True)`` hands back a broadcast (stride-0) gradient; in channels_last, adding it
to ``x``'s other gradients (the attention product, the residual path) is a strided, unvectorised add
on the CPU (its cost: ``reports/bench.md``). ``mean_pool`` writes its gradient densely in ``x``'s own
layout instead, so every later add is a contiguous one.
"""

from __future__ import annotations

import torch
from torch import nn


class _MeanPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        count = 1
        for d in dims:  # a loop, not a generator expression: generators break torch.compile's graph
            count *= x.shape[d]
        ctx.shape, ctx.count = x.shape, count
        ctx.channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        return x.mean(dim=dims, keepdim=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
        out = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=fmt)
        # make the small gradient share the layout first: the broadcast copy is then contiguous inside
        out.copy_(grad.contiguous(memory_format=fmt).expand(ctx.shape))
        return out.div_(ctx.count), None


def mean_pool(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``x.mean(dims, keepdim=True)``, with a dense gradient in ``x``'s memory format."""
    ndim = x.dim()
    return _MeanPool.apply(x, tuple([d % ndim for d in dims]))


class GlobalMeanPool(nn.Module):
    """``mean_pool`` over H and W: a drop-in for ``nn.AdaptiveAvgPool2d(1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_pool(x, (2, 3))
