"""Find a dataset (bundled sample, folder, zip, ``$NASATTN_DATA``, torchvision download) and decode it once.

Decoded datasets are cached as one tensor file in ``$NASATTN_CACHE`` (default ``~/.cache/nasattn``),
keyed by the source's content: for a zip, every member's name, size and CRC-32 (from the archive's
directory, so no image is read); for a folder, every file's relative path, size and mtime. Change,
add or remove an image and the key changes, so the next run decodes afresh.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from nasattn.data.dataset import DataError, DataNotFoundError, ImageDataset

log = logging.getLogger(__name__)

MINI_NAME = "eurosat-mini"
MINI_DIR = Path(__file__).resolve().parent / "eurosat_mini"
ENV_DATA = "NASATTN_DATA"
ENV_CACHE = "NASATTN_CACHE"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CACHE_VERSION = 1

HOW_TO_GET_DATA = f"""\
Name a dataset in one of these ways:
  --data eurosat-mini                  the 500-image EuroSAT sample bundled with nasattn
  --data PATH/EuroSAT_RGB.zip          the official EuroSAT RGB zip (https://zenodo.org/records/7711810)
  --data PATH/EuroSAT_RGB/             an unpacked folder: one sub-folder of images per class
  export {ENV_DATA}=PATH               the same, once for every command
  --download                           fetch EuroSAT with torchvision (needs internet)"""


@dataclass(frozen=True)
class _Entry:
    """One image file of a source: its class folder, a display name and how to read its bytes."""

    cls: str
    name: str
    read: Callable[[], bytes]


def default_cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "nasattn")


def load_dataset(
    source: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
    image_size: int | None = None,
    progress: bool = False,
) -> ImageDataset:
    """Load an ImageFolder-style dataset as an ``ImageDataset`` (decoded once, then cached).

    ``source``: ``"eurosat-mini"``, a folder, or a ``.zip``; ``None`` reads ``$NASATTN_DATA``, then
    (with ``download=True``) fetches EuroSAT with torchvision. Folders may hold the class folders
    directly or under single nested folders (``EuroSAT_RGB/``, ``eurosat/2750/``). Images of another
    size than the first one (or than ``image_size``) are resized. Unreadable images are skipped,
    logged and listed in ``skipped``. Raises ``DataNotFoundError`` (with instructions) or ``DataError``.
    """
    path = _resolve(source, download, cache_dir)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entries, kind = _list_entries(path)
    key = _fingerprint(path, kind, entries, image_size)
    cache_file = cache / f"{key}.pt"
    if cache_file.exists():
        try:
            blob = torch.load(cache_file, weights_only=True)
            return ImageDataset(blob["images"], blob["labels"], list(blob["classes"]), str(path), key, list(blob["skipped"]))
        except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
            log.warning("ignoring unreadable cache %s (%s); decoding again", cache_file, e)
    ds = _decode(path, entries, key, image_size, progress)
    _save_cache(cache_file, ds)
    return ds


# ------------------------------------------------------------------------------------------ locating
def _resolve(source: str | os.PathLike | None, download: bool, cache_dir: str | os.PathLike | None) -> Path:
    if source is None:
        source = os.environ.get(ENV_DATA) or None
    if source is None:
        if download:
            return _download(Path(cache_dir) if cache_dir is not None else default_cache_dir())
        raise DataNotFoundError(f"no dataset given and ${ENV_DATA} is not set.\n{HOW_TO_GET_DATA}")
    if str(source) == MINI_NAME:
        return MINI_DIR
    path = Path(source).expanduser()
    if not path.exists():
        if download:
            return _download(path)
        raise DataNotFoundError(f"dataset not found: {path}\n{HOW_TO_GET_DATA}")
    return path.resolve()


def _download(root: Path) -> Path:
    from torchvision.datasets import EuroSAT

    try:
        EuroSAT(str(root), download=True)
    except Exception as e:  # noqa: BLE001 - offline, blocked, or a bad mirror
        raise DataNotFoundError(f"downloading EuroSAT into {root} failed: {e}\n{HOW_TO_GET_DATA}") from None
    return root / "eurosat" / "2750"


def _list_entries(path: Path) -> tuple[list[_Entry], str]:
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path} is a file but not a zip archive; give a .zip or a folder of class folders")
        return _zip_entries(path), "zip"
    return _folder_entries(_class_root(path)), "folder"


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not Path(name).name.startswith(".")


def _class_root(path: Path) -> Path:
    """Descend through single sub-folders (``EuroSAT_RGB/``, ``eurosat/2750/``) to the class folders."""
    root = path
    for _ in range(4):
        subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))]
        if len(subdirs) == 1 and not any(_is_image(p.name) for p in root.iterdir() if p.is_file()):
            inner = subdirs[0]
            if not any(_is_image(f.name) for f in inner.iterdir() if f.is_file()):
                root = inner
                continue
        break
    return root


def _folder_entries(root: Path) -> list[_Entry]:
    entries = []
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
        for f in sorted(cls_dir.rglob("*")):
            if f.is_file() and _is_image(f.name):
                entries.append(_Entry(cls_dir.name, str(f.relative_to(root)), f.read_bytes))
    if not entries:
        raise DataError(f"no images found in {root}: expected one sub-folder of images per class\n{HOW_TO_GET_DATA}")
    return entries


def _zip_entries(path: Path) -> list[_Entry]:
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and _is_image(i.filename) and "__MACOSX" not in i.filename]
    parts = [Path(i.filename).parts for i in infos]
    if not parts:
        raise DataError(f"no images found in {path}\n{HOW_TO_GET_DATA}")
    # class = the folder right above the image, below the longest common prefix
    depth = min(len(p) for p in parts)
    common = 0
    while common < depth - 2 and len({p[common] for p in parts}) == 1:
        common += 1
    holder = _ZipHolder(path)
    entries = [
        _Entry(p[common], i.filename, holder.reader(i.filename))
        for i, p in sorted(zip(infos, parts), key=lambda t: t[0].filename)
        if len(p) >= common + 2
    ]
    if not entries:
        raise DataError(f"{path}: images must sit in one folder per class, e.g. EuroSAT_RGB/Forest/x.jpg")
    entries.sort(key=lambda e: (e.cls, e.name))
    return entries


class _ZipHolder:
    """Opens the archive once, lazily, for all member reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zf: zipfile.ZipFile | None = None
        self.crcs: dict[str, tuple[int, int]] = {}
        with zipfile.ZipFile(path) as zf:
            self.crcs = {i.filename: (i.file_size, i.CRC) for i in zf.infolist()}

    def reader(self, name: str) -> Callable[[], bytes]:
        def read() -> bytes:
            if self._zf is None:
                self._zf = zipfile.ZipFile(self.path)
            return self._zf.read(name)

        read.signature = (name, *self.crcs[name])  # type: ignore[attr-defined]
        return read


def _fingerprint(path: Path, kind: str, entries: list[_Entry], image_size: int | None) -> str:
    h = hashlib.sha256(f"nasattn-cache-v{CACHE_VERSION}|{kind}|{image_size}".encode())
    if kind == "zip":
        for e in entries:
            h.update(repr((e.cls, *e.read.signature)).encode())  # type: ignore[attr-defined]
    else:
        root = _class_root(path)
        for e in entries:
            st = (root / e.name).stat()
            h.update(repr((e.cls, e.name, st.st_size, st.st_mtime_ns)).encode())
    return h.hexdigest()[:20]


# ------------------------------------------------------------------------------------------ decoding
def _iter_progress(entries: list[_Entry], enabled: bool, label: str) -> Iterator[_Entry]:
    if not enabled:
        yield from entries
        return
    from rich.progress import track

    yield from track(entries, description=f"decoding {label}", transient=True)


def _decode_one(data: bytes) -> torch.Tensor:
    """Decode one image file's bytes to a (3, H, W) uint8 tensor (Pillow: JPEG, PNG, TIFF, ...)."""
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _decode(path: Path, entries: list[_Entry], key: str, image_size: int | None, progress: bool) -> ImageDataset:
    from torchvision.transforms.v2.functional import resize

    classes = sorted({e.cls for e in entries})
    index = {c: i for i, c in enumerate(classes)}
    images, labels, skipped = [], [], []
    for e in _iter_progress(entries, progress, path.name):
        try:
            img = _decode_one(e.read())
        except Exception as err:  # noqa: BLE001 - a corrupt file is reported by name, not fatal
            skipped.append(e.name)
            log.warning("skipping unreadable image %s (%s)", e.name, str(err).splitlines()[0] if str(err) else type(err).__name__)
            continue
        size = image_size or (images[0].shape[-1] if images else max(img.shape[-2:]))
        if img.shape[-2:] != (size, size):
            img = resize(img, [size, size], antialias=True)
        images.append(img)
        labels.append(index[e.cls])
    if not images:
        raise DataError(f"none of the {len(entries)} images in {path} could be decoded (first: {skipped[0]})")
    if skipped:
        log.warning("%s: skipped %d unreadable image(s): %s", path, len(skipped), ", ".join(skipped[:10]))
    return ImageDataset(torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes, str(path), key, skipped)


def _save_cache(cache_file: Path, ds: ImageDataset) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        torch.save({"images": ds.images, "labels": ds.labels, "classes": ds.classes, "skipped": ds.skipped}, tmp)
        os.replace(tmp, cache_file)
    except OSError as e:  # a read-only home still trains, just without the cache
        log.warning("could not write the dataset cache %s (%s)", cache_file, e)
