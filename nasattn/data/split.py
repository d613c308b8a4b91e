"""Deterministic stratified train/val/test splits and loss weights from the training labels (scikit-learn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight

DEFAULT_RATIOS = (0.7, 0.15, 0.15)  # the paper author's protocol: 70/15/15 of all images, seed 42
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
) -> Splits:
    """Split indices into train/val/test with ``ratios`` (summing to 1), stratified by label by default.

    The same labels, ratios and seed always give the same split (``sklearn.model_selection.train_test_split``).
    """
    y = _labels(labels)
    if len(ratios) != 3 or any(r <= 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(f"split ratios must be three positive numbers summing to 1, got {list(ratios)}")
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, train_size=ratios[0], stratify=y if stratify else None, random_state=seed)
    val, test = train_test_split(
        rest, train_size=ratios[1] / (ratios[1] + ratios[2]), stratify=y[rest] if stratify else None, random_state=seed
    )
    return Splits(np.sort(train), np.sort(val), np.sort(test))


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
