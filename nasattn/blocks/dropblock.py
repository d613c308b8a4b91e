"""DropBlock (Ghiasi et al. 2018) schedules over stages and epochs, on top of torchvision's DropBlock2d.

A schedule maps the number of stages to one drop probability per stage; every schedule can be
ramped linearly from 0 over the first ``ramp_epochs`` epochs, as in the DropBlock paper.

On the CPU the block mask follows torchvision's law but is built sparsely: the few seeds are drawn as
geometric gaps instead of a Bernoulli draw over every position (12% of a bf16 training step of the
balanced net), and their blocks are written directly instead of dilated by a stride-1 max-pool over
the whole noise tensor (31% of a float32 step at one thread); see ``drop_block2d_cpu`` and
reports/bench.md.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.ops import DropBlock2d, drop_block2d

from nasattn.registry import register_block


@register_block("dropblock", "none")
def no_dropblock(num_stages: int) -> list[float]:
    """No DropBlock anywhere."""
    return [0.0] * num_stages


@register_block("dropblock", "constant")
def constant(num_stages: int, p: float = 0.1) -> list[float]:
    """The same drop probability ``p`` in every stage."""
    return [float(p)] * num_stages


@register_block("dropblock", "progressive")
def progressive(num_stages: int, p_min: float = 0.05, p_max: float = 0.2) -> list[float]:
    """Drop probability rising linearly with depth from ``p_min`` (first stage) to ``p_max`` (last)."""
    if num_stages == 1:
        return [float(p_max)]
    step = (p_max - p_min) / (num_stages - 1)
    return [round(p_min + i * step, 10) for i in range(num_stages)]


def ramp_factor(epoch: int, ramp_epochs: int) -> float:
    """Fraction of the target drop probability in force at 1-based ``epoch``."""
    if ramp_epochs <= 0:
        return 1.0
    return min(1.0, max(0.0, (epoch - 1) / ramp_epochs))


class ScheduledDropBlock(DropBlock2d):
    """torchvision's DropBlock2d whose probability follows a target and an epoch ramp."""

    def __init__(self, p: float, block_size: int = 7) -> None:
        super().__init__(p, block_size)
        self.target_p = float(p)

    def set_ramp(self, factor: float) -> None:
        self.p = self.target_p * factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        # torchvision clamps the block to the feature map and then rejects an even size: keep it odd.
        size = min(self.block_size, x.shape[-2], x.shape[-1])
        size -= 1 - size % 2
        if size < 1:
            return x
        if x.device.type == "cpu":
            return drop_block2d_cpu(x, self.p, size, self.inplace, self.eps)
        return drop_block2d(x, self.p, size, self.inplace, self.eps, self.training)  # no host sync on GPUs


def bernoulli_positions(shape: tuple[int, ...], prob: float) -> torch.Tensor:
    """Indices (k x len(shape)) of the ones of an i.i.d. Bernoulli(``prob``) tensor of ``shape``.

    Same law as ``torch.empty(shape).bernoulli_(prob).nonzero()``, drawn as geometric gaps between
    successive ones: about ``prob * numel`` random numbers instead of ``numel``, which matters when
    ``prob`` is a few per thousand (DropBlock's seeds; the dense draw was 12% of a bf16 training step).
    """
    if prob >= 1.0:
        return torch.ones(shape, dtype=torch.bool).nonzero()
    total = math.prod(shape)
    expected = total * prob
    ends = torch.empty(0, dtype=torch.float64)
    last = -1.0
    while last < total - 1:  # the next one would still fall inside: draw more gaps
        gaps = torch.empty(int(expected + 6 * math.sqrt(expected) + 16), dtype=torch.float64).geometric_(prob)
        chunk = last + gaps.cumsum(0)
        ends = torch.cat([ends, chunk])
        last = float(chunk[-1])
    flat = ends[ends < total].long()
    return torch.stack(torch.unravel_index(flat, shape), dim=1)


def drop_block2d_cpu(input: torch.Tensor, p: float, block_size: int, inplace: bool = False,
                     eps: float = 1e-6, seeds: torch.Tensor | None = None) -> torch.Tensor:
    """torchvision's ``drop_block2d`` (training mode, odd ``block_size`` <= the map) for CPU tensors.

    The block seeds follow torchvision's law (i.i.d. Bernoulli(gamma) over the valid positions) but are
    drawn sparsely (``bernoulli_positions``), and their blocks are written directly instead of dilated
    by a max-pool. Given the same ``seeds`` (indices N x 4 of the seed positions), the output equals
    torchvision's bit for bit.
    """
    n, c, h, w = input.shape
    gamma = (p * h * w) / ((block_size**2) * ((h - block_size + 1) * (w - block_size + 1)))
    if seeds is None:
        seeds = bernoulli_positions((n, c, h - block_size + 1, w - block_size + 1), gamma)
    keep = torch.ones_like(input)  # same memory format as the input: a mixed-format product is slow
    if len(seeds):
        offsets = torch.arange(block_size, device=input.device)
        rows = seeds[:, 2, None, None] + offsets[None, :, None]
        cols = seeds[:, 3, None, None] + offsets[None, None, :]
        keep[seeds[:, 0, None, None], seeds[:, 1, None, None], rows, cols] = 0
    keep.mul_(keep.numel() / (eps + keep.sum()))  # x * (m * s) == x * m * s for a 0/1 mask m
    return input.mul_(keep) if inplace else input * keep


def make_dropblock(p: float, block_size: int) -> nn.Module:
    return ScheduledDropBlock(p, block_size) if p > 0 else nn.Identity()
