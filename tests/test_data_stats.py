"""Channel statistics: exact values, computed once per dataset and selection, kept beside the decoded cache."""

from __future__ import annotations

import json

import numpy as np
import torch

from nasattn.data import load_dataset
from nasattn.data.dataset import ImageDataset
from nasattn.data.stats import _MEMO, cached_channel_stats, channel_stats, stats_file


def _reference(images: torch.Tensor, idx: np.ndarray) -> tuple[list[float], list[float]]:
    x = images[torch.as_tensor(idx)].double() / 255.0
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3), unbiased=False).tolist()


def test_channel_stats_match_float64_statistics_for_any_chunk():
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    idx = np.arange(0, 50, 3)
    mean, std = _reference(images, idx)
    for chunk in (1, 7, 4096):
        m, s = channel_stats(images, idx, chunk=chunk)
        np.testing.assert_allclose(m, mean, rtol=1e-12)
        np.testing.assert_allclose(s, std, rtol=1e-10)


def test_stats_are_computed_once_and_read_back_from_beside_the_cache(tmp_path):
    ds = load_dataset("eurosat-mini", cache_dir=tmp_path)
    assert ds.cache_file is not None and ds.cache_file.startswith(str(tmp_path))
    idx = np.arange(0, len(ds), 2)
    first = cached_channel_stats(ds, idx)
    np.testing.assert_allclose(first[0], _reference(ds.images, idx)[0], rtol=1e-12)
    path = stats_file(ds)
    assert path is not None and path.parent == tmp_path and path.name.endswith(".stats.json")
    entries = json.loads(path.read_text())
    assert list(entries.values()) == [[first[0], first[1]]]
    # A marker written into the file is what a second call returns: it reads, it does not recompute.
    (key,) = entries
    path.write_text(json.dumps({key: [[0.25] * 3, [0.5] * 3]}))
    assert cached_channel_stats(ds, idx) == first  # this process remembers it
    _MEMO.clear()
    reloaded = load_dataset("eurosat-mini", cache_dir=tmp_path)  # from the decoded cache: same key
    assert cached_channel_stats(reloaded, idx) == ([0.25] * 3, [0.5] * 3)
    # Another selection is another entry, computed from the images.
    other = cached_channel_stats(ds, idx[:-1])
    np.testing.assert_allclose(other[0], _reference(ds.images, idx[:-1])[0], rtol=1e-12)
    assert len(json.loads(path.read_text())) == 2


def test_a_dataset_built_in_memory_is_not_cached():
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    a = ImageDataset(images, torch.zeros(10, dtype=torch.int64), ["a"], "mem", "same")
    b = ImageDataset(255 - images, torch.zeros(10, dtype=torch.int64), ["a"], "mem", "same")
    idx = np.arange(10)
    assert cached_channel_stats(a, idx)[0] != cached_channel_stats(b, idx)[0]
