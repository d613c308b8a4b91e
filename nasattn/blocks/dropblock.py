"""DropBlock (Ghiasi et al. 2018): schedules over stages and epochs, and the laws that draw the mask.

A schedule maps the number of stages to one drop probability per stage; every schedule can be
ramped linearly from 0 over the first ``ramp_epochs`` epochs, as in the DropBlock paper.

A law (``dropblock: {law: ...}`` in an ArchSpec) says how the mask is drawn in training mode:

- ``torchvision`` (default): ``torchvision.ops.drop_block2d``'s law: an independent mask per channel,
  seeds i.i.d. Bernoulli(gamma) over the positions where a whole block fits, gamma =
  p * H * W / (block_size^2 * (H - block_size + 1) * (W - block_size + 1)).
- ``paper``: the paper author's ``DropBlock2D`` (models/balanced_12layer.py): one mask per image shared
  by all channels, seeds i.i.d. Bernoulli(p / block_size^2) over the whole map, blocks centred on their
  seed and clipped at the border. It drops a smaller share of activations than ``torchvision`` at the
  same p, the more so the smaller the map.

Both rescale the kept activations by numel / (kept + eps). The drop probability in force lives in a
buffer, so an epoch ramp changes a tensor's value and not a compiled graph's guard.

On the CPU in eager mode the ``torchvision`` mask is built sparsely (``drop_block2d_cpu``): its few
seeds are drawn as geometric gaps instead of a Bernoulli draw over every position, and their blocks
are written directly instead of dilated by a stride-1 max-pool (see reports/bench.md). Under
``torch.compile`` and on GPUs the dense, traceable draw is used.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nasattn.registry import get_block, register_block

Law = Callable[..., torch.Tensor]


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


def _eager_cpu(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and not torch.compiler.is_compiling()


def fitted_block_size(x: torch.Tensor, block_size: int) -> int:
    """The block size torchvision's law draws on ``x``: clamped to the map, and odd (it rejects an even size)."""
    size = min(block_size, x.shape[-2], x.shape[-1])
    return size - (1 - size % 2)


# ------------------------------------------------------------------------------------------- laws
@register_block("dropblock_law", "torchvision")
def torchvision_law(x: torch.Tensor, p: torch.Tensor | float, block_size: int) -> torch.Tensor:
    """torchvision's DropBlock2d: a mask per channel, gamma corrected for where a block fits."""
    eps = 1e-6  # torchvision's
    size = fitted_block_size(x, block_size)
    if size < 1:
        return x
    if _eager_cpu(x):
        return drop_block2d_cpu(x, float(p), size, False, eps)
    return drop_block2d_dense(x, p, size, eps)


@register_block("dropblock_law", "paper")
def paper_law(x: torch.Tensor, p: torch.Tensor | float, block_size: int) -> torch.Tensor:
    """The paper author's DropBlock2D: one mask shared by all channels, gamma = p / block_size^2.

    The mask is built in the input's dtype (the uniform draw is float32, the kept count summed in float32).
    """
    eps = 1e-7  # the author's
    n, _, h, w = x.shape
    gamma = p / block_size**2
    seeds = (torch.rand((n, 1, h, w), device=x.device) < gamma).to(x.dtype)
    mask = 1 - F.max_pool2d(seeds, kernel_size=block_size, stride=1, padding=block_size // 2)[..., :h, :w]
    return x * (mask * (mask.numel() / (mask.sum(dtype=torch.float32) + eps)).to(x.dtype))


def expected_dropped_fraction(law: str, p: float, block_size: int, height: int, width: int) -> float:
    """Expected share of a map's activations zeroed by ``law`` (``paper`` or ``torchvision``).

    Closed form: the mean over positions of 1 - (1 - gamma)^k, k the number of possible seeds whose
    block covers the position. ``torchvision``'s block is first clamped to the map and made odd, as in
    ``torchvision_law``.
    """
    def cover_paper(n: int, b: int) -> list[int]:  # blocks centred on any seed, clipped at the border
        return [min(i + b // 2, n - 1) - max(i - b // 2, 0) + 1 for i in range(n)]

    def cover_torchvision(n: int, b: int) -> list[int]:  # blocks whose top-left corner lets them fit
        return [min(i, n - b) - max(0, i - b + 1) + 1 for i in range(n)]

    if law == "paper":
        gamma, rows, cols = p / block_size**2, cover_paper(height, block_size), cover_paper(width, block_size)
    elif law == "torchvision":
        b = min(block_size, height, width)
        b -= 1 - b % 2
        gamma = p * height * width / (b**2 * (height - b + 1) * (width - b + 1))
        rows, cols = cover_torchvision(height, b), cover_torchvision(width, b)
    else:
        raise ValueError(f"no closed form for DropBlock law {law!r}; known: paper, torchvision")
    return sum(1 - (1 - gamma) ** (r * c) for r in rows for c in cols) / (height * width)


def drop_block2d_dense(x: torch.Tensor, p: torch.Tensor | float, block_size: int, eps: float = 1e-6) -> torch.Tensor:
    """torchvision's ``drop_block2d`` (training mode, odd ``block_size`` <= the map) with ``p`` a tensor.

    Same law and steps as torchvision's; no value is read back to the host, so it traces under
    ``torch.compile`` and does not synchronise a GPU. The mask takes the input's memory format and
    dtype (0/1 is exact in bf16 and fp16): only the uniform draw is float32 (a bf16 draw could not
    resolve gamma's few per thousand) and the kept count is summed in float32.
    """
    n, c, h, w = x.shape
    gamma = (p * h * w) / ((block_size**2) * ((h - block_size + 1) * (w - block_size + 1)))
    seeds = (torch.rand((n, c, h - block_size + 1, w - block_size + 1), device=x.device) < gamma).to(x.dtype)
    seeds = F.pad(seeds, [block_size // 2] * 4, value=0)
    if x.is_contiguous(memory_format=torch.channels_last):
        seeds = seeds.contiguous(memory_format=torch.channels_last)
    mask = 1 - F.max_pool2d(seeds, kernel_size=block_size, stride=1, padding=block_size // 2)
    return x * (mask * (mask.numel() / (eps + mask.sum(dtype=torch.float32))).to(x.dtype))


def bernoulli_positions(shape: tuple[int, ...], prob: float) -> torch.Tensor:
    """Indices (k x len(shape)) of the ones of an i.i.d. Bernoulli(``prob``) tensor of ``shape``.

    Same law as ``torch.empty(shape).bernoulli_(prob).nonzero()``, drawn as geometric gaps between
    successive ones: about ``prob * numel`` random numbers instead of ``numel``, which matters when
    ``prob`` is a few per thousand (DropBlock's seeds).
    """
    if prob >= 1.0:
        return torch.ones(shape, dtype=torch.bool).nonzero()
    total = math.prod(shape)
    if prob <= 0.0:
        return torch.empty((0, len(shape)), dtype=torch.long)
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


# ----------------------------------------------------------------------------------------- module
class ScheduledDropBlock(nn.Module):
    """DropBlock whose probability follows a target and an epoch ramp, drawn by a registered law.

    ``p`` (the probability in force) is a non-persistent buffer ``p_now``; ``set_ramp`` writes it.
    Identity in eval mode.
    """

    def __init__(self, p: float, block_size: int = 7, law: str = "torchvision") -> None:
        super().__init__()
        self.target_p = float(p)
        self.block_size = int(block_size)
        self.law = law
        self._law: Law = get_block("dropblock_law", law).factory
        self.register_buffer("p_now", torch.tensor(float(p)), persistent=False)

    @property
    def p(self) -> float:
        """The drop probability in force (reads the buffer)."""
        return float(self.p_now)

    def set_ramp(self, factor: float) -> None:
        self.p_now.fill_(self.target_p * factor)

    def set_law(self, law: str | Law) -> None:
        """Draw the mask with the registered ``dropblock_law`` named ``law``, or with the callable ``law(x, p, block_size)``."""
        if callable(law):
            self._law, self.law = law, getattr(law, "__name__", "custom")
        else:
            self._law, self.law = get_block("dropblock_law", law).factory, law

    def extra_repr(self) -> str:
        return f"p={self.target_p}, block_size={self.block_size}, law={self.law}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.target_p == 0.0:
            return x
        if _eager_cpu(x) and float(self.p_now) == 0.0:  # a ramp's first epoch: nothing to draw
            return x
        return self._law(x, self.p_now, self.block_size)


def make_dropblock(p: float, block_size: int, law: str = "torchvision") -> nn.Module:
    return ScheduledDropBlock(p, block_size, law) if p > 0 else nn.Identity()
