"""Deterministic train/val/test splits and loss weights from the training labels.

Two splits: stratified by class (scikit-learn, the default protocol), or the paper author's plain
random split (``torch.utils.data.random_split``, the ``paper`` protocols). A dataset too small for
the split is refused with ``DataError`` naming the minimum it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight

from nasattn.data.dataset import DataError

DEFAULT_RATIOS = (0.7, 0.15, 0.15)  # the paper author's: 70/15/15 of all images, seed 42
DEFAULT_SEED = 42


@dataclass(frozen=True)
class Splits:
    """Sorted image indices of each split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _labels(labels: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
    return labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)


def split_dataset(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    seed: int = DEFAULT_SEED,
    stratify: bool = True,
    classes: Sequence[str] | None = None,
) -> Splits:
    """Split indices into train/val/test with ``ratios`` (summing to 1); the same inputs give the same split.

    ``stratify=True``: stratified by label (``sklearn.model_selection.train_test_split``, twice).
    ``stratify=False``: the paper author's split, ``torch.utils.data.random_split`` with lengths
    ``[int(r0 * n), int(r1 * n), rest]`` and ``torch.Generator().manual_seed(seed)``; over the images
    in ImageFolder's order (``load_dataset``'s order) with ratios 0.7/0.15/0.15 and seed 42, this is
    the author's exact partition. Raises ``DataError`` for a dataset of one class, and when it is too small for the split
    (every part needs images: train >= 2, val >= 1, test >= 1), naming the minimum it needs;
    ``classes`` (names of the labels) make that message name the smallest class.
    """
    y = _labels(labels)
    if len(ratios) != 3 or any(r <= 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(f"split ratios must be three positive numbers summing to 1, got {list(ratios)}")
    present = np.unique(y)
    if len(present) < 2:
        name = f" ({classes[int(present[0])]})" if classes is not None and len(present) and present[0] < len(classes) else ""
        raise DataError(
            f"the dataset has {len(present)} class{name}; a classifier needs at least 2 classes, "
            "one sub-folder of images per class"
        )
    parts = _try_split(y, ratios, seed, stratify)
    if parts is None:
        raise DataError(_too_small(y, ratios, stratify, classes))
    return Splits(*(np.sort(p) for p in parts))


def random_split_lengths(n: int, ratios: Sequence[float]) -> list[int]:
    """The author's split lengths: ``int(ratio * n)`` for train and val, the rest for test."""
    train, val = int(ratios[0] * n), int(ratios[1] * n)
    return [train, val, n - train - val]


def _try_split(
    y: np.ndarray, ratios: Sequence[float], seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The three index arrays, or ``None`` when the split is impossible or leaves a part too small."""
    n = len(y)
    if stratify:
        idx = np.arange(n)
        try:
            train, rest = train_test_split(idx, train_size=ratios[0], stratify=y, random_state=seed)
            val, test = train_test_split(
                rest, train_size=ratios[1] / (ratios[1] + ratios[2]), stratify=y[rest], random_state=seed
            )
        except ValueError:  # too few members in a class, or fewer test images than classes
            return None
    else:
        from torch.utils.data import random_split

        lengths = random_split_lengths(n, ratios)
        if lengths[0] < 2 or lengths[1] < 1 or lengths[2] < 1:
            return None
        train, val, test = (
            np.asarray(s.indices, dtype=np.int64)
            for s in random_split(range(n), lengths, generator=torch.Generator().manual_seed(seed))
        )
    if len(train) < 2 or len(val) < 1 or len(test) < 1:
        return None
    return np.asarray(train), np.asarray(val), np.asarray(test)


def min_split_size(num_classes: int, ratios: Sequence[float] = DEFAULT_RATIOS, stratify: bool = True) -> int:
    """The fewest images the split accepts: per class for a stratified split (every class that large),
    in all for the random split."""
    for m in range(1, 100_000):
        y = np.repeat(np.arange(num_classes), m) if stratify else np.zeros(m, dtype=np.int64)
        if _try_split(y, ratios, 0, stratify) is not None:
            return m
    raise ValueError(f"no dataset size up to 100000 fits the split {list(ratios)}")  # pragma: no cover


def _too_small(y: np.ndarray, ratios: Sequence[float], stratify: bool, classes: Sequence[str] | None) -> str:
    counts = np.bincount(y.astype(np.int64)) if len(y) else np.zeros(0, dtype=np.int64)
    present = np.flatnonzero(counts)
    k = max(len(present), 1)
    head = f"the dataset ({len(y)} images, {k} {'class' if k == 1 else 'classes'}) is too small for the split {list(ratios)}"
    if not stratify:
        return f"{head}: the random split needs at least {min_split_size(k, ratios, False)} images"
    need = min_split_size(k, ratios, True)
    smallest = int(present[np.argmin(counts[present])]) if len(present) else 0
    name = classes[smallest] if classes is not None and smallest < len(classes) else f"label {smallest}"
    have = int(counts[smallest]) if len(counts) else 0
    hint = "" if have < need else " (with classes this unequal it needs more in the smaller classes)"
    return (
        f"{head}: a stratified split of {k} classes needs at least {need} images in every class "
        f"({need * k} in all){hint}; the smallest class, {name}, has {have}"
    )


def stratified_subset(labels: Sequence[int] | np.ndarray | torch.Tensor, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of a stratified ``fraction`` (0 < fraction <= 1) of the images."""
    y = _labels(labels)
    if not 0 < fraction <= 1:
        raise ValueError(f"subset fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(len(y))
    keep, _ = train_test_split(np.arange(len(y)), train_size=fraction, stratify=y, random_state=seed)
    return np.sort(keep)


def compute_class_weights(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    num_classes: int,
    mode: Literal["none", "balanced", "effective_number"] = "balanced",
    beta: float = 0.999,
) -> torch.Tensor | None:
    """Per-class loss weights from training labels.

    ``balanced``: n / (k * n_c) (scikit-learn's ``compute_class_weight``); ``effective_number``:
    (1 - beta) / (1 - beta^n_c), scaled to sum to k (Cui et al., CVPR 2019); ``none``: ``None``.
    A class absent from ``labels`` gets weight 0.
    """
    if mode == "none":
        return None
    y = _labels(labels).astype(np.int64)
    present = np.unique(y)
    if mode == "balanced":
        w = np.zeros(num_classes)
        w[present] = compute_class_weight("balanced", classes=present, y=y)
    elif mode == "effective_number":
        counts = np.bincount(y, minlength=num_classes).astype(np.float64)
        w = np.where(counts > 0, (1 - beta) / (1 - np.power(beta, counts)), 0.0)
        w = w * num_classes / w.sum()
    else:
        raise ValueError(f"unknown class-weight mode {mode!r}; allowed: none, balanced, effective_number")
    return torch.tensor(w, dtype=torch.float32)
