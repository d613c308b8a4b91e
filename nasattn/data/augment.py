"""Batched augmentation on uint8 image tensors, on whatever device the batch lives (GPU when training there).

Each transform takes a uint8 batch [B, C, H, W] and a ``torch.Generator`` on the batch's device and
returns the normalised float32 batch; randomness is per image. Policies:

- ``dihedral``: the 8 symmetries of the square (flips and 90-degree rotations), natural for overhead tiles;
- ``flips``: horizontal and vertical flips;
- ``paper``: the paper author's pipeline: flips, rotation by up to 90 degrees (bilinear, zero fill),
  colour jitter (brightness, contrast, saturation 0.3; hue 0.1, as a YIQ rotation), Gaussian blur
  (kernel 3, sigma 0.1-2.0);
- ``none``.
``crop_pad > 0`` adds a random crop of the reflect-padded image (a translation by up to ``crop_pad`` px).
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTATIONS = ("dihedral", "flips", "paper", "none")

Augment = Literal["dihedral", "flips", "paper", "none"]
TrainTransform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


def _rand(n: int, g: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = g.device if g is not None else device
    return torch.rand(n, generator=g, device=gen_device).to(device)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (or [0, 255] float) -> float32 (x/255 - mean) / std, one fused multiply-add."""
    scale = torch.tensor([1 / (255 * s) for s in std], device=x.device).view(1, -1, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], device=x.device).view(1, -1, 1, 1)
    return torch.addcmul(shift, x.float(), scale)


def random_flips(x: torch.Tensor, g: torch.Generator | None, transpose: bool = False) -> torch.Tensor:
    """Per-image horizontal and vertical flips, and (square images, ``transpose``) a transpose: D4."""
    b = x.shape[0]
    shape = (b, 1, 1, 1)
    x = torch.where((_rand(b, g, x.device) < 0.5).view(shape), x.flip(3), x)
    x = torch.where((_rand(b, g, x.device) < 0.5).view(shape), x.flip(2), x)
    if transpose and x.shape[2] == x.shape[3]:
        x = torch.where((_rand(b, g, x.device) < 0.5).view(shape), x.transpose(2, 3), x)
    return x


def random_crop(x: torch.Tensor, g: torch.Generator | None, pad: int) -> torch.Tensor:
    """Per-image random crop of the reflect-padded image (a shift by up to ``pad`` pixels)."""
    b, _, h, w = x.shape
    xp = F.pad(x.float(), (pad, pad, pad, pad), mode="reflect")
    oy = (_rand(b, g, x.device) * (2 * pad + 1)).long().clamp_max(2 * pad)
    ox = (_rand(b, g, x.device) * (2 * pad + 1)).long().clamp_max(2 * pad)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return xp[bi, ci, rows, cols]


def random_rotate(x: torch.Tensor, g: torch.Generator | None, degrees: float) -> torch.Tensor:
    """Rotate each image by an angle in [-degrees, degrees] (bilinear, zero fill, as RandomRotation)."""
    b = x.shape[0]
    theta = (_rand(b, g, x.device) * 2 - 1) * math.radians(degrees)
    cos, sin = theta.cos(), theta.sin()
    zero = torch.zeros_like(cos)
    mat = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def color_jitter(
    x: torch.Tensor, g: torch.Generator | None, brightness: float, contrast: float, saturation: float, hue: float
) -> torch.Tensor:
    """Per-image colour jitter of an RGB batch in [0, 255] (float)."""
    b = x.shape[0]
    shape = (b, 1, 1, 1)

    def factor(amount: float) -> torch.Tensor:
        return (1 + (_rand(b, g, x.device) * 2 - 1) * amount).view(shape)

    x = (x * factor(brightness)).clamp(0, 255)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    c = factor(contrast)
    x = (c * x + (1 - c) * mean).clamp(0, 255)
    s = factor(saturation)
    x = (s * x + (1 - s) * _gray(x)).clamp(0, 255)
    if hue > 0:  # rotate the chroma plane of YIQ by up to hue * 360 degrees
        angle = (_rand(b, g, x.device) * 2 - 1) * hue * 2 * math.pi
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=x.device)
        from_yiq = torch.linalg.inv(to_yiq)
        cos, sin = angle.cos(), angle.sin()
        rot = torch.zeros(b, 3, 3, device=x.device)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        m = from_yiq @ rot @ to_yiq  # [b, 3, 3]
        x = torch.einsum("bij,bjhw->bihw", m, x).clamp(0, 255)
    return x


def gaussian_blur(x: torch.Tensor, g: torch.Generator | None, kernel: int, sigma: tuple[float, float]) -> torch.Tensor:
    """Per-image Gaussian blur with sigma drawn uniformly from ``sigma`` (reflect padding)."""
    b, c, h, w = x.shape
    s = sigma[0] + _rand(b, g, x.device) * (sigma[1] - sigma[0])
    r = torch.arange(kernel, device=x.device, dtype=x.dtype) - kernel // 2
    k1 = torch.exp(-(r[None, :] ** 2) / (2 * s[:, None] ** 2))
    k1 = k1 / k1.sum(dim=1, keepdim=True)
    k2 = (k1[:, :, None] * k1[:, None, :]).repeat_interleave(c, dim=0)[:, None]  # [b*c, 1, k, k]
    xp = F.pad(x.reshape(1, b * c, h, w), (kernel // 2,) * 4, mode="reflect")
    return F.conv2d(xp, k2, groups=b * c).view(b, c, h, w)


def make_train_transform(
    augment: Augment = "dihedral",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    crop_pad: int = 0,
) -> TrainTransform:
    """A function ``(uint8 batch, generator) -> augmented, normalised float32 batch``."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augment!r}; allowed: {', '.join(AUGMENTATIONS)}")

    def transform(x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        if augment in ("dihedral", "flips"):
            x = random_flips(x, g, transpose=augment == "dihedral")
        if crop_pad:
            x = random_crop(x, g, crop_pad)
        if augment == "paper":
            x = random_flips(x.float(), g)
            x = random_rotate(x, g, 90.0)
            x = color_jitter(x, g, 0.3, 0.3, 0.3, 0.1)
            x = gaussian_blur(x, g, 3, (0.1, 2.0))
        return normalize(x, mean, std)

    return transform


def make_eval_transform(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``uint8 batch -> normalised float32 batch``."""
    return lambda x: normalize(x, mean, std)


def tta_views(x: torch.Tensor) -> list[torch.Tensor]:
    """Test-time views of a normalised batch: identity, horizontal flip, vertical flip."""
    return [x, x.flip(3), x.flip(2)]
