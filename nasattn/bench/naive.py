"""The naive reference pipeline: how the same training is usually written in plain PyTorch.

torchvision ``ImageFolder`` reads and decodes the JPEG files on every epoch, torchvision transforms v2
flip and normalise each image (``RandomHorizontalFlip``, ``RandomVerticalFlip``, ``ToImage`` +
``ToDtype(float32, scale=True)``, the v2 spelling of ``ToTensor``, then ``Normalize``), a
``DataLoader`` with worker processes batches them, and a plain loop trains a float32 NCHW model with
``torch.optim.AdamW``. No AMP, no channels_last, no compile, no on-device data.

It trains the *same* images as the engine: the engine's training split
(``split_dataset(dataset.labels, ...)``) mapped onto ImageFolder by each image's relative file name,
so it does not depend on both sides listing files in the same order. The loss is the recipe's
(class weights, label smoothing) and the sampler draws ``torch.randperm(n, generator=seed)``, the
engine's batch order, so the two pipelines see the same batches (up to augmentation).

ImageFolder cannot read a ``.zip``: for a zip source the decoded images' members are extracted once
into ``$NASATTN_CACHE/extracted/<dataset fingerprint>/`` (the fingerprint is content-keyed, so a
changed archive extracts afresh; delete the folder to reclaim the space).
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torchvision.datasets import ImageFolder

from nasattn.data import DataError, class_root, default_cache_dir, list_images
from nasattn.engine import resolve_device
from nasattn.models import build_model

if TYPE_CHECKING:
    from nasattn.data import ImageDataset

__all__ = ["NaiveOptions", "image_folder_root", "naive_train_set", "naive_loader", "naive_throughput", "default_workers"]


def default_workers(device: torch.device | str) -> int:
    """DataLoader workers when not given: 2 on the CPU (the issue's default), up to 8 with a GPU."""
    dev = torch.device(device) if isinstance(device, str) else device
    if dev.type == "cpu":
        return 2
    return max(2, min(8, os.cpu_count() or 2))


def _entries(source: Path) -> tuple[list[Any], str]:
    return list_images(source)


def image_folder_root(dataset: ImageDataset, cache_dir: str | os.PathLike | None = None) -> tuple[Path, list[str]]:
    """An ImageFolder root for ``dataset`` and the relative path (POSIX) of each of its images, in order.

    ``names[i]`` is the file of ``dataset.images[i]`` relative to the root. A folder source is used in
    place; a zip is extracted once into ``<cache>/extracted/<fingerprint>/`` (see the module docstring).
    """
    source = Path(dataset.source)
    entries, kind = _entries(source)
    skipped = set(getattr(dataset, "skipped", []) or [])
    kept = [e for e in entries if e.name not in skipped]
    if len(kept) != len(dataset):
        raise DataError(
            f"{source}: the source lists {len(kept)} readable images but the dataset holds {len(dataset)}; "
            "it changed since it was decoded (run again to re-decode)"
        )
    if kind == "folder":
        root = class_root(source)
        return root, [PurePosixPath(Path(e.name)).as_posix() for e in kept]

    # zip: extract the decoded members once, keyed by the dataset's content fingerprint
    parts = [PurePosixPath(e.name).parts for e in entries]
    common = min(min(i for i, p in enumerate(ps) if p == e.cls) for ps, e in zip(parts, entries))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dest = cache / "extracted" / str(dataset.fingerprint)
    if not (dest / ".complete").exists():
        tmp = dest.with_name(f"{dest.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with zipfile.ZipFile(source) as zf:
            for e in entries:
                zf.extract(e.name, tmp)
        (tmp / ".complete").write_text(str(source))
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    root = dest.joinpath(*parts[0][:common])
    names = [PurePosixPath(*PurePosixPath(e.name).parts[common:]).as_posix() for e in kept]
    return root, names


class FixedClassesImageFolder(ImageFolder):
    """``ImageFolder`` with the dataset's classes (plain ImageFolder also counts hidden folders as classes)."""

    def __init__(self, root: str, classes: Sequence[str], **kwargs: Any) -> None:
        self.fixed_classes = list(classes)
        super().__init__(root, **kwargs)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self.fixed_classes, {c: i for i, c in enumerate(self.fixed_classes)}


def naive_train_set(
    dataset: Any,
    indices: Sequence[int] | np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    augment: str = "flips",
    cache_dir: str | os.PathLike | None = None,
) -> torch.utils.data.Subset:
    """``Subset(ImageFolder(root, transform), ...)`` holding the images ``dataset.images[indices]``, in order.

    ``augment``: ``"flips"`` (random horizontal and vertical flips) or ``"none"``. Labels follow
    ``dataset.classes`` (checked image by image).
    """
    from torchvision.transforms import v2


    if augment not in ("flips", "none"):
        raise ValueError(f"the naive pipeline supports augment 'flips' or 'none', got {augment!r}")
    root, names = image_folder_root(dataset, cache_dir)
    wanted = set(names)
    classes = list(dataset.classes)

    tf: list[Any] = [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()] if augment == "flips" else []
    tf += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    folder = FixedClassesImageFolder(
        str(root), classes, transform=v2.Compose(tf),
        is_valid_file=lambda p: Path(os.path.relpath(p, root)).as_posix() in wanted,
    )
    position = {Path(os.path.relpath(p, root)).as_posix(): i for i, (p, _) in enumerate(folder.samples)}
    labels = torch.as_tensor(dataset.labels).tolist()
    mapped = []
    for i in np.asarray(indices, dtype=np.int64).tolist():
        j = position.get(names[i])
        if j is None or folder.targets[j] != labels[i]:
            raise DataError(f"ImageFolder({root}) does not hold {names[i]} with class {classes[labels[i]]}")
        mapped.append(j)
    return torch.utils.data.Subset(folder, mapped)


def naive_loader(
    train_set: torch.utils.data.Dataset,
    batch_size: int,
    *,
    num_workers: int = 2,
    seed: int = 0,
    shuffle: bool = True,
    pin_memory: bool = False,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """A plain DataLoader; shuffling draws ``torch.randperm(n, generator=seed)`` (the engine's order).

    Its workers persist across epochs (``persistent_workers``), so no timed window includes their restart.
    """
    sampler = (
        torch.utils.data.RandomSampler(train_set, generator=torch.Generator().manual_seed(seed)) if shuffle else None
    )
    return torch.utils.data.DataLoader(
        train_set, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=num_workers,
        pin_memory=pin_memory, drop_last=drop_last, persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed + 1),  # worker seeds, not the global RNG
    )


@dataclass(frozen=True)
class NaiveOptions:
    """How ``naive_throughput`` times the plain pipeline: ``steps`` timed steps after ``warmup`` (or ``epochs``
    whole epochs), the DataLoader's ``num_workers`` (None: :func:`default_workers`), ``device``, ``seed``,
    ``augment`` (``flips`` or ``none``) and ``cache_dir`` (where a zip source is extracted)."""

    steps: int = 20
    warmup: int = 3
    epochs: int | None = None
    num_workers: int | None = None
    device: str = "auto"
    seed: int = 0
    augment: str = "flips"
    cache_dir: str | os.PathLike | None = None


class _PlainLoop:
    """The plain training step: float32 NCHW model, the recipe's loss, ``torch.optim.AdamW``."""

    def __init__(self, spec: Any, recipe: Any, dev: torch.device, seed: int):
        torch.manual_seed(seed)  # same seed, same init as the engine (which seeds, then builds)
        self.model = build_model(spec).to(dev)
        torch.manual_seed(seed)  # the engine, too, restarts its random stream (DropBlock's draws) after building
        weights = recipe.class_weights if isinstance(recipe.class_weights, list) else None
        self.criterion = nn.CrossEntropyLoss(
            weight=None if weights is None else torch.tensor(weights, dtype=torch.float32, device=dev),
            label_smoothing=recipe.label_smoothing,
        )
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.dev = dev
        self.first_loss: float | None = None

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.model, "set_epoch"):
            self.model.set_epoch(epoch)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """One training step on a batch; returns its number of images."""
        x, y = x.to(self.dev, non_blocking=True), y.to(self.dev, non_blocking=True)
        loss = self.criterion(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        value = loss.item()  # the usual per-step logging (a host sync on a GPU)
        if self.first_loss is None:
            self.first_loss = value
        return len(y)


def _endless(loop: _PlainLoop, loader: Any):
    """The loader's batches epoch after epoch (the model told each epoch's number)."""
    epoch = 0
    while True:
        epoch += 1
        loop.set_epoch(epoch)
        yield from loader


def _time_epochs(loop: _PlainLoop, loader: Any, epochs: int) -> tuple[int, int, list[float]]:
    """``(images, steps, seconds of each epoch)`` of ``epochs`` whole epochs."""
    images, steps, epoch_seconds = 0, 0, []
    for e in range(epochs):
        loop.set_epoch(e + 1)
        t0 = time.perf_counter()
        for x, y in loader:
            images += loop.step(x, y)
            steps += 1
        epoch_seconds.append(time.perf_counter() - t0)
    return images, steps, epoch_seconds


def naive_throughput(
    spec: Any,
    recipe: Any,
    dataset: Any,
    train_idx: Sequence[int] | np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    options: NaiveOptions | None = None,
) -> dict[str, Any]:
    """Train ``spec`` the plain way on ``dataset.images[train_idx]``; time ``steps`` steps after ``warmup``.

    With ``epochs``, times that many full epochs (after the warm-up steps) instead. Returns images/s,
    seconds per epoch (measured with ``epochs``, else ``len(train_idx) / images/s``), the timed steps,
    images and seconds, and ``first_loss`` (the first training step's loss).
    """
    o = options or NaiveOptions()
    dev = resolve_device(o.device)
    workers = default_workers(dev) if o.num_workers is None else o.num_workers
    n_train = len(train_idx)
    loop = _PlainLoop(spec, recipe, dev, o.seed)
    train_set = naive_train_set(dataset, train_idx, mean, std, augment=o.augment, cache_dir=o.cache_dir)
    loader = naive_loader(
        train_set, recipe.batch_size, num_workers=workers, seed=o.seed, pin_memory=dev.type == "cuda",
        drop_last=n_train >= recipe.batch_size,  # whole batches only, as the engine trains
    )
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    loop.model.train()
    stream = _endless(loop, loader)
    for _ in range(o.warmup):
        loop.step(*next(stream))
    epoch_seconds: list[float] = []
    if o.epochs is None:
        t0 = time.perf_counter()
        images = sum(loop.step(*next(stream)) for _ in range(o.steps))
        seconds = time.perf_counter() - t0
        timed_steps = o.steps
    else:
        del stream  # start epochs afresh (a new iterator; the persistent workers stay)
        images, timed_steps, epoch_seconds = _time_epochs(loop, loader, o.epochs)
        seconds = sum(epoch_seconds)
    ips = images / seconds if seconds > 0 else float("nan")
    return {
        "pipeline": "naive",
        "images_per_second": ips,
        "seconds_per_epoch": (seconds / len(epoch_seconds)) if epoch_seconds else n_train / ips,
        "seconds_per_epoch_measured": bool(epoch_seconds),
        "timed_steps": timed_steps,
        "timed_images": images,
        "timed_seconds": seconds,
        "warmup_steps": o.warmup,
        "first_loss": loop.first_loss,
        "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
        "settings": _naive_settings(dev, workers, o.augment),
    }


def _naive_settings(dev: torch.device, workers: int, augment: str) -> dict[str, Any]:
    """What the naive pipeline ran with (the record's ``settings``)."""
    return {
        "data": "torchvision ImageFolder (JPEG decode every epoch) + DataLoader",
        "num_workers": workers,
        "pin_memory": dev.type == "cuda",
        "transforms": "v2: " + ("RandomHorizontalFlip, RandomVerticalFlip, " if augment == "flips" else "")
        + "ToImage, ToDtype(float32, scale=True), Normalize",
        "dtype": "float32",
        "memory_format": "NCHW (contiguous)",
        "optimizer": "torch.optim.AdamW (defaults)",
        "compile": False,
        "device": str(dev),
    }
