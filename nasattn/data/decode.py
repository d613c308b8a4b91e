"""Decoding one image file to a 3-channel uint8 tensor, within a pixel budget checked before decoding.

The budget (``$NASATTN_MAX_MEGAPIXELS``, default 50 megapixels) bounds what one image may cost: its own
pixels, and the pixels of the resized image that fitting it to the model's input makes (a 1 x 1,000,000
strip fitted to 64 x 64 would first be resized to 64 x 64,000,000). Pillow reads the header lazily, so
the size is known before any pixel is decoded; an image over the budget is refused with the reason and
the loader skips it with a note. Pillow's own bomb check (``Image.MAX_IMAGE_PIXELS``) is set to the
same budget.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from nasattn.data.dataset import DataError
from nasattn.schema import ENV_MAX_MEGAPIXELS

DEFAULT_MAX_MEGAPIXELS = 50.0

_CONVERSIONS = {"L": "grayscale -> RGB", "LA": "grayscale -> RGB, alpha dropped", "RGBA": "alpha dropped",
                "P": "palette -> RGB", "PA": "palette -> RGB, alpha dropped", "CMYK": "CMYK -> RGB", "1": "1-bit -> RGB"}


class OverBudget(ValueError):
    """An image whose decoding would need more pixels than the budget allows."""


def max_pixels() -> int:
    """The pixel budget per image: ``$NASATTN_MAX_MEGAPIXELS`` megapixels (default 50); DataError when invalid."""
    raw = os.environ.get(ENV_MAX_MEGAPIXELS, "").strip()
    try:
        mp = float(raw) if raw else DEFAULT_MAX_MEGAPIXELS
    except ValueError:
        mp = -1.0
    if not mp > 0:
        raise DataError(f"${ENV_MAX_MEGAPIXELS}={raw!r}: expected a positive number of megapixels, e.g. 50")
    return int(mp * 1_000_000)


def fitted_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) after :func:`fit_image`'s resize step (shorter side to ``size``), before the crop."""
    if (width, height) == (size, size):
        return width, height
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def check_budget(width: int, height: int, size: int | None, limit: int) -> None:
    """Raise OverBudget when the image, or its resized copy for a ``size`` x ``size`` input, exceeds ``limit`` pixels."""
    need, why = width * height, ""
    if size is not None:
        fw, fh = fitted_shape(width, height, size)
        if fw * fh > need:
            need, why = fw * fh, f" once resized to {fw}x{fh} for a {size}x{size} input"
    if need > limit:
        raise OverBudget(
            f"{width}x{height} pixels needs {need / 1e6:,.1f} MP{why}, over the budget of {limit / 1e6:g} MP per "
            f"image (raise it with {ENV_MAX_MEGAPIXELS}=N)"
        )


def fit_image(img: torch.Tensor, size: int) -> torch.Tensor:
    """``img`` [C, H, W] as ``size`` x ``size``: shorter side resized to ``size`` (antialiased bilinear),
    then centre-cropped; unchanged when already that size."""
    from torchvision.transforms.v2.functional import center_crop, resize

    if tuple(img.shape[-2:]) == (size, size):
        return img
    return center_crop(resize(img, [size], antialias=True), [size, size])


def decode_image(data: bytes, size: int | None = None, limit: int | None = None) -> tuple[torch.Tensor, str | None]:
    """Decode one image file's bytes to a (3, H, W) uint8 tensor (Pillow: JPEG, PNG, TIFF, ...) and what
    was converted (None for 8-bit RGB).

    The header's size is checked against ``limit`` (default :func:`max_pixels`) before decoding (OverBudget).
    Grayscale -> 3 equal channels; alpha dropped; 16-bit (Pillow modes ``I;16*``, and ``I`` with values
    above 255) scaled to 8 bits with ``to_dtype(..., scale=True)``.
    """
    limit = max_pixels() if limit is None else limit
    Image.MAX_IMAGE_PIXELS = limit  # Pillow warns above this and refuses above twice it; ours comes first
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ValueError("not an image file Pillow can read") from None
    except Image.DecompressionBombError:
        raise OverBudget(f"over the budget of {limit / 1e6:g} MP per image (raise it with {ENV_MAX_MEGAPIXELS}=N)") from None
    with im:
        check_budget(*im.size, size, limit)
        if im.mode.startswith("I;16") or im.mode == "I":
            return _gray(np.asarray(im), im.mode)
        what = _CONVERSIONS.get(im.mode)
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous(), what


def _gray(arr: np.ndarray, mode: str) -> tuple[torch.Tensor, str]:
    """A 16-bit or 32-bit integer grayscale image as 3 equal uint8 channels, and what was converted."""
    if mode == "I" and arr.max(initial=0) <= 255:
        gray, what = torch.from_numpy(arr.astype(np.uint8)), "grayscale -> RGB"
    else:
        from torchvision.transforms.v2.functional import to_dtype

        gray = to_dtype(torch.from_numpy(arr.clip(0, 65535).astype(np.uint16)), torch.uint8, scale=True)
        what = "16-bit scaled to 8-bit (x 255/65535), grayscale -> RGB"
    return gray.unsqueeze(0).expand(3, -1, -1).contiguous(), what
