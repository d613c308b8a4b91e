"""Per-channel mean and std of a dataset's training images, computed once and kept beside the decoded cache.

``cached_channel_stats(data, idx)`` looks the statistics of ``data.images[idx]`` up in this process,
then in ``<cache key>.stats.json`` beside the dataset's decoded ``<cache key>.pt`` (one entry per
dataset fingerprint and index selection), and computes and stores them only when neither has them.
A dataset built in memory (no ``cache_file``, so its fingerprint need not name its content) is
computed every time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from nasattn.data.dataset import ImageDataset

log = logging.getLogger(__name__)
Stats = tuple[list[float], list[float]]
_MEMO: dict[str, Stats] = {}


def channel_stats(images: torch.Tensor, idx: np.ndarray, chunk: int = 4096) -> Stats:
    """Per-channel mean and std of the uint8 images [N, C, H, W] at ``idx``, in the [0, 1] scale.

    Sums of values and squares are exact integers (int64), so the result does not depend on ``chunk``.
    """
    c = images.shape[1]
    s = torch.zeros(c, dtype=torch.int64)
    s2 = torch.zeros(c, dtype=torch.int64)
    for i in range(0, len(idx), chunk):
        x = images[torch.as_tensor(idx[i:i + chunk])].to(torch.int32)
        s += x.sum(dim=(0, 2, 3), dtype=torch.int64).cpu()
        s2 += x.square().sum(dim=(0, 2, 3), dtype=torch.int64).cpu()
    n = len(idx) * images.shape[2] * images.shape[3]
    mean = s.double() / (255.0 * n)
    std = (s2.double() / (255.0**2 * n) - mean.square()).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


def stats_key(data: ImageDataset, idx: np.ndarray) -> str:
    """The entry name of ``data.images[idx]``: a digest of the dataset fingerprint and the indices."""
    h = hashlib.sha256(data.fingerprint.encode())
    h.update(np.ascontiguousarray(idx, dtype=np.int64).tobytes())
    return h.hexdigest()[:20]


def stats_file(data: ImageDataset) -> Path | None:
    """``<cache key>.stats.json`` beside the dataset's decoded cache (None for a dataset built in memory)."""
    cache_file = getattr(data, "cache_file", None)  # duck-typed datasets (images, labels, classes) have none
    return None if cache_file is None else Path(cache_file).with_suffix(".stats.json")


def _read(path: Path | None) -> dict[str, list[list[float]]]:
    if path is None or not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as e:  # a damaged file is recomputed, never fatal
        log.warning("ignoring unreadable channel statistics %s (%s)", path, e)
        return {}


def _write(path: Path, entries: dict[str, list[list[float]]]) -> None:
    try:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(entries, indent=1))
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache still trains, it only computes again
        log.warning("could not write the channel statistics %s (%s)", path, e)


def cached_channel_stats(data: ImageDataset, idx: np.ndarray) -> Stats:
    """``channel_stats(data.images, idx)``, computed once per dataset and selection (see the module docstring)."""
    path = stats_file(data)
    if path is None:
        return channel_stats(torch.as_tensor(data.images), idx)
    key = stats_key(data, idx)
    if key in _MEMO:
        return _MEMO[key]
    entries = _read(path)
    if key in entries:
        mean, std = entries[key]
    else:
        mean, std = channel_stats(torch.as_tensor(data.images), idx)
        _write(path, {**_read(path), key: [mean, std]})
    _MEMO[key] = (list(mean), list(std))
    return _MEMO[key]
