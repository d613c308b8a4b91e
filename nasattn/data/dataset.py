"""``ImageDataset``: a whole image-classification dataset decoded once into one uint8 tensor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from nasattn.config import NasattnError


class DataNotFoundError(NasattnError, FileNotFoundError):
    """No dataset where the user pointed (the message says how to get one)."""


class DataError(NasattnError, ValueError):
    """A dataset that exists but cannot be used (no images, no classes, unreadable archive)."""


@dataclass(frozen=True)
class ImageDataset:
    """All images of a dataset in memory: ``images`` uint8 [N, C, H, W], ``labels`` int64 [N].

    ``classes[i]`` names label ``i`` (sorted folder names, as torchvision's ImageFolder);
    ``fingerprint`` identifies the source's content; ``skipped`` lists unreadable files; ``notes``
    says what loading changed (resized or skipped images), one line each; ``cache_file`` is the decoded
    cache it was read from or written to (None for a dataset built in memory), beside which its
    channel statistics are kept (``nasattn.data.stats``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str
    fingerprint: str
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cache_file: str | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageDataset:
        """The images at ``indices`` (same classes); the fingerprint records the selection."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        digest = _hash_indices(idx)
        return replace(self, images=self.images[idx], labels=self.labels[idx], fingerprint=f"{self.fingerprint}:{digest}")

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts))


def _hash_indices(idx: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(idx.numpy().tobytes()).hexdigest()[:12]
