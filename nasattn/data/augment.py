"""Batched augmentation on uint8 image tensors, on whatever device the batch lives (GPU when training there).

Each transform takes a uint8 batch [B, C, H, W] and a ``torch.Generator`` on the batch's device and
returns the normalised float32 batch; randomness is per image. Policies:

- ``dihedral``: the 8 symmetries of the square (flips and 90-degree rotations), natural for overhead tiles;
- ``flips``: horizontal and vertical flips;
- ``paper``: the paper author's torchvision pipeline, batched: ``RandomHorizontalFlip``,
  ``RandomVerticalFlip``, ``RandomRotation(90)``, ``ColorJitter(0.3, 0.3, 0.3, 0.1)``,
  ``GaussianBlur(3, (0.1, 2.0))`` (see below for what is exact);
- ``none``.
``crop_pad > 0`` adds a random crop of the reflect-padded image (a translation by up to ``crop_pad`` px).

The ``paper`` policy against torchvision on PIL images (the author's code). Reproduced: the order of
the five steps; each random law, drawn per image (flips p = 0.5; angle uniform in [-90, 90] degrees;
brightness, contrast and saturation factors uniform in [0.7, 1.3], hue shift uniform in [-0.1, 0.1];
sigma uniform in [0.1, 2.0]); rotation about the image centre with nearest-neighbour interpolation
(RandomRotation's default) and zero fill; ColorJitter's four operations in a random order drawn per
image (as ``torch.randperm(4)`` per call), brightness as a blend with black, contrast as a blend with
the mean luma, saturation as a blend with the luma image (luma weights 0.299/0.587/0.114, PIL's ``L``),
hue as a shift of H in HSV modulo 1; the blur's kernel (normalised Gaussian) and reflect padding.
Approximated: the arithmetic is float throughout, where PIL rounds to 8 bits after each jitter
operation and after the blur (about one grey level per operation); contrast blends with the float
mean luma, where PIL uses the mean of the rounded luma image rounded to an integer; the hue shift is
torchvision's tensor HSV (float), where PIL's HSV is 8-bit (a few grey levels apart); nearest-
neighbour rotation can pick the other pixel where a source point falls on a pixel boundary. The random numbers come from the batch's
generator, not from torch's global generator in each DataLoader worker: the same laws, other draws.

Constants (normalisation scale and shift) are built once per transform and device; a training step
creates no tensor from Python values and reads nothing back to the host.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
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


class Normalizer:
    """uint8 (or [0, 255] float) -> float32 (x/255 - mean) / std, one fused multiply-add.

    The scale and shift are built once, and copied once to each device they are used on.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        scale = torch.tensor([1 / (255 * s) for s in self.std], dtype=torch.float32).view(1, -1, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], dtype=torch.float32).view(1, -1, 1, 1)
        self._consts: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {scale.device: (scale, shift)}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        consts = self._consts.get(x.device)
        if consts is None:
            cpu = next(iter(self._consts.values()))
            consts = self._consts[x.device] = (cpu[0].to(x.device), cpu[1].to(x.device))
        return torch.addcmul(consts[1], x.float(), consts[0])


@functools.lru_cache(maxsize=64)
def _normalizer(mean: tuple[float, ...], std: tuple[float, ...]) -> Normalizer:
    return Normalizer(mean, std)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (or [0, 255] float) -> float32 (x/255 - mean) / std (a cached ``Normalizer`` per mean/std)."""
    return _normalizer(tuple(float(m) for m in mean), tuple(float(s) for s in std))(x)


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


def random_rotate(
    x: torch.Tensor, g: torch.Generator | None, degrees: float, mode: Literal["nearest", "bilinear"] = "nearest"
) -> torch.Tensor:
    """Rotate each image about its centre by an angle uniform in [-degrees, degrees], zero fill
    (``mode``: nearest, RandomRotation's default, or bilinear)."""
    return rotate(x, (_rand(x.shape[0], g, x.device) * 2 - 1) * degrees, mode)


def rotate(x: torch.Tensor, degrees: torch.Tensor, mode: Literal["nearest", "bilinear"] = "nearest") -> torch.Tensor:
    """Rotate image ``i`` counter-clockwise by ``degrees[i]`` about its centre, zero fill (as PIL's rotate)."""
    theta = degrees * (math.pi / 180)
    cos, sin = theta.cos(), theta.sin()
    zero = torch.zeros_like(cos)
    mat = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma with PIL's ``L`` weights, [B, 1, H, W]."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1], [B, 3, H, W] -> HSV in [0, 1] (H as a fraction of a turn; torchvision's formulas,
    red taking precedence over green over blue where two channels share the maximum)."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    maxc, minc = x.amax(1, keepdim=True), x.amin(1, keepdim=True)
    chroma = maxc - minc
    s = chroma / torch.where(maxc > 0, maxc, 1.0)
    div = torch.where(chroma > 0, chroma, 1.0)
    h = torch.where(maxc == r, (g - b) / div, torch.where(maxc == g, 2.0 + (b - r) / div, 4.0 + (r - g) / div))
    h = torch.where(chroma > 0, torch.remainder(h / 6.0, 1.0), 0.0)
    return torch.cat((h, s, maxc), 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV in [0, 1], [B, 3, H, W] -> RGB in [0, 1]: channel n in (R 5, G 3, B 1) is
    v - v s clamp(min(k, 4 - k), 0, 1) with k = (n + 6 h) mod 6."""
    h6, s, v = (x[:, 0:1] * 6.0), x[:, 1:2], x[:, 2:3]
    k = torch.remainder(torch.cat((h6 + 5.0, h6 + 3.0, h6 + 1.0), 1), 6.0)
    return v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)


@dataclass(frozen=True)
class JitterParams:
    """Per-image ColorJitter draws: factors [B] (``hue``: a shift in turns) and the order [B, 4] of
    the operations (0 brightness, 1 contrast, 2 saturation, 3 hue)."""

    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor
    order: torch.Tensor


def jitter_params(
    b: int, g: torch.Generator | None, device: torch.device, brightness: float, contrast: float, saturation: float,
    hue: float,
) -> JitterParams:
    """Draw ColorJitter's parameters for ``b`` images: factors uniform in [max(0, 1 - a), 1 + a], the hue
    shift uniform in [-hue, hue], a uniform random order of the four operations per image."""

    def factor(amount: float) -> torch.Tensor:
        lo = max(0.0, 1.0 - amount)
        return lo + _rand(b, g, device) * (1.0 + amount - lo)

    return JitterParams(
        factor(brightness), factor(contrast), factor(saturation), (_rand(b, g, device) * 2 - 1) * hue,
        _rand(4 * b, g, device).view(b, 4).argsort(dim=1),
    )


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with black by factor ``f[i]`` (a [0, 255] float batch)."""
    return (x * f.view(-1, 1, 1, 1)).clamp(0, 255)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean luma by factor ``f[i]``."""
    return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), f)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the image's luma by factor ``f[i]``."""
    return _blend(x, _gray(x), f)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift H in HSV by ``shift[i]`` turns (modulo 1)."""
    return _shift_hue(x, shift.view(-1, 1, 1))


def _blend(x: torch.Tensor, other: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    f = f.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp(0, 255)


def apply_jitter(x: torch.Tensor, p: JitterParams, active: Sequence[bool] = (True, True, True, True)) -> torch.Tensor:
    """Apply the four operations to each image in its own order ``p.order[i]`` (``active[k]``: op k is used).

    Brightness, contrast and saturation are one blend ``f x + (1 - f) other`` (other: black, the mean
    luma, the luma), so each of the four steps computes one blend and, where hue is active, one hue shift.
    """
    b = x.shape[0]
    one = torch.ones_like(p.brightness)
    factors = torch.stack([f if on else one for f, on in zip((p.brightness, p.contrast, p.saturation, one), active)], 1)
    for pos in range(4):
        which = p.order[:, pos : pos + 1]  # [B, 1]
        f = factors.gather(1, which).view(b, 1, 1, 1)
        which = which.view(b, 1, 1, 1)
        gray = _gray(x)
        other = torch.where(which == 2, gray, torch.where(which == 1, gray.mean(dim=(1, 2, 3), keepdim=True), 0.0))
        out = (f * x + (1 - f) * other).clamp(0, 255)
        x = torch.where(which == 3, adjust_hue(x, p.hue), out) if active[3] else torch.where(which == 3, x, out)
    return x


def color_jitter(
    x: torch.Tensor, g: torch.Generator | None, brightness: float, contrast: float, saturation: float, hue: float
) -> torch.Tensor:
    """Per-image ColorJitter of an RGB batch in [0, 255] (float), as ``torchvision.transforms.ColorJitter``
    per image: random factors, the four operations in a random order (see ``jitter_params``)."""
    p = jitter_params(x.shape[0], g, x.device, brightness, contrast, saturation, hue)
    return apply_jitter(x, p, (brightness > 0, contrast > 0, saturation > 0, hue > 0))


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    hsv = rgb_to_hsv(x / 255.0)
    h = torch.remainder(hsv[:, 0] + shift, 1.0)
    return hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), 1)) * 255.0


def gaussian_blur(x: torch.Tensor, g: torch.Generator | None, kernel: int, sigma: tuple[float, float]) -> torch.Tensor:
    """Per-image Gaussian blur with sigma drawn uniformly from ``sigma`` (reflect padding)."""
    return blur(x, kernel, sigma[0] + _rand(x.shape[0], g, x.device) * (sigma[1] - sigma[0]))


def blur(x: torch.Tensor, kernel: int, s: torch.Tensor) -> torch.Tensor:
    """Blur image ``i`` with a normalised ``kernel`` x ``kernel`` Gaussian of sigma ``s[i]``, reflect padding."""
    b, c, h, w = x.shape
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

    norm = Normalizer(mean, std)

    def transform(x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        if augment in ("dihedral", "flips"):
            x = random_flips(x, g, transpose=augment == "dihedral")
        if crop_pad:
            x = random_crop(x, g, crop_pad)
        if augment == "paper":
            x = random_flips(x.float(), g)
            x = random_rotate(x, g, 90.0, mode="nearest")
            x = color_jitter(x, g, 0.3, 0.3, 0.3, 0.1)
            x = gaussian_blur(x, g, 3, (0.1, 2.0))
        return norm(x)

    return transform


def make_eval_transform(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``uint8 batch -> normalised float32 batch``."""
    return Normalizer(mean, std)


def tta_views(x: torch.Tensor) -> list[torch.Tensor]:
    """Test-time views of a normalised batch: identity, horizontal flip, vertical flip."""
    return [x, x.flip(3), x.flip(2)]
