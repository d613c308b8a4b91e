"""Find a dataset (bundled sample, folder, zip, ``$NASATTN_DATA``, torchvision download) and decode it once.

Images are listed in torchvision ImageFolder's order (sorted class folders, then the files of each
class as ImageFolder walks them), so index ``i`` is the ``i``-th sample of ``ImageFolder`` over the
same folder (or over the zip's extraction): the paper author's random split selects the same images.

Images as a model sees them (``image_size``: the spec's ``input_size`` is the truth):
- every image becomes 3-channel uint8 RGB: grayscale is repeated on the three channels, an alpha
  channel is dropped (not composited), palette images are expanded; 16-bit images are scaled to
  8 bits (``value >> 8``, torchvision's ``to_dtype(..., scale=True)``), never clipped;
- an image that is not ``image_size`` x ``image_size`` has its shorter side resized to ``image_size``
  (antialiased bilinear) and is then centre-cropped to a square: the aspect ratio is kept, a
  non-square image loses its edges. One line says how many images were changed and which sizes
  were found. Without ``image_size``, a dataset of one size is kept as it is; mixed sizes are fitted
  to the shorter side of the most common size, and the line says so.
Unreadable files, and images over the pixel budget (``$NASATTN_MAX_MEGAPIXELS``, default 50 MP, checked
from the header before decoding: see ``nasattn.data.decode``), are skipped and named in one line. With
``image_size`` given, each image is fitted as soon as it is decoded, so at most one large image is held
at a time. Folder links are followed only inside the dataset folder, once (``nasattn.data.walk``). (A one-class dataset loads, but
``split_dataset`` refuses it: nothing can be trained on it.)

Decoded datasets are cached as one tensor file in ``$NASATTN_CACHE`` (default ``~/.cache/nasattn``),
keyed by the source's content: for a zip, every member's name, size and CRC-32 (from the archive's
directory, so no image is read); for a folder, every file's relative path, size and mtime. Change,
add or remove an image and the key changes, so the next run decodes afresh.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import torch

from nasattn.data.dataset import DataError, DataNotFoundError, ImageDataset
from nasattn.data.decode import OverBudget, check_budget, decode_image, fit_image, max_pixels
from nasattn.data.walk import walk_classes
from nasattn.schema import ENV_CACHE, ENV_DATA

log = logging.getLogger(__name__)

MINI_NAME = "eurosat-mini"
MINI_DIR = Path(__file__).resolve().parent / "eurosat_mini"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CACHE_VERSION = 4  # 2: ImageFolder order, 16-bit scaling, shorter-side resize + centre crop; 3: conversion notes;
#                   4: pixel budget, links followed once and only inside the folder
RESIZE_RULE = "shorter side resized (antialiased bilinear), then centre-cropped"

HOW_TO_GET_DATA = f"""\
Name a dataset in one of these ways:
  --data eurosat-mini                  the 500-image EuroSAT sample bundled with nasattn
  --data PATH/EuroSAT_RGB.zip          the official EuroSAT RGB zip (https://zenodo.org/records/7711810)
  --data PATH/EuroSAT_RGB/             an unpacked folder: one sub-folder of images per class
  export {ENV_DATA}=PATH               the same, once for every command
  --download                           fetch EuroSAT with torchvision (needs internet)"""


@dataclass(frozen=True)
class ImageFile:
    """One image file of a source: its class folder, its path (relative to the class root for a folder,
    the member name for a zip) and how to read its bytes."""

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
    directly or under single nested folders (``EuroSAT_RGB/``, ``eurosat/2750/``). ``image_size``:
    the side every image is given (pass the spec's ``input_size``; see the module docstring for the
    rule). What was changed (converted, resized or skipped images) is kept in ``notes``, one line each,
    for the caller to show. Raises ``DataNotFoundError`` (with instructions) or ``DataError``.
    """
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    path = _resolve(source, download, cache_dir)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entries, kind, listing_notes = _listing(path)
    limit = max_pixels()
    key = _fingerprint(path, kind, entries, image_size, limit)
    cache_file = cache / f"{key}.pt"
    ds = None
    if cache_file.exists():
        try:
            blob = torch.load(cache_file, weights_only=True)
            ds = ImageDataset(
                blob["images"], blob["labels"], list(blob["classes"]), str(path), key, list(blob["skipped"]),
                list(blob["notes"]), str(cache_file),
            )
        except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
            log.warning("ignoring unreadable cache %s (%s); decoding again", cache_file, e)
    if ds is None:
        ds = replace(_decode(path, entries, key, image_size, progress, limit), cache_file=str(cache_file))
        ds.notes[:0] = listing_notes
        _save_cache(cache_file, ds)
    return ds


def list_images(source: str | os.PathLike) -> tuple[list[ImageFile], str]:
    """The image files of a folder or zip source in ``load_dataset``'s (ImageFolder's) order, and the
    source's kind (``"folder"`` or ``"zip"``). ``"eurosat-mini"`` names the bundled sample.

    ``dataset.images[i]`` was decoded from ``list_images(dataset.source)[0][i]`` unless files were
    skipped as unreadable (``dataset.skipped`` names them).
    """
    entries, kind, _ = _listing(MINI_DIR if str(source) == MINI_NAME else Path(source))
    return entries, kind


def _listing(path: Path) -> tuple[list[ImageFile], str, list[str]]:
    """:func:`list_images` plus notes on what the listing left out (links, duplicate members)."""
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path} is a file but not a zip archive; give a .zip or a folder of class folders")
        entries, notes = _zip_entries(path)
        return entries, "zip", notes
    entries, notes = _folder_entries(class_root(path))
    return entries, "folder", notes


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
    """EuroSAT via torchvision into ``root/eurosat/2750``; on failure, remove the folders it created."""
    from torchvision.datasets import EuroSAT

    created = _first_missing(root / "eurosat")
    try:
        EuroSAT(str(root), download=True)
    except Exception as e:  # noqa: BLE001 - offline, blocked, or a bad mirror
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        reason = (str(e).splitlines() or [""])[0] or type(e).__name__
        raise DataNotFoundError(
            f"downloading EuroSAT (torchvision's EuroSAT download, from its huggingface.co mirror) into "
            f"{root / 'eurosat'} failed: {reason}. It was attempted because a download was requested "
            f"(--download, or download: true in the study or ablation file) and no dataset was found.\n"
            f"{HOW_TO_GET_DATA}"
        ) from None
    return root / "eurosat" / "2750"


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (or ``path`` itself) that does not exist yet."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not Path(name).name.startswith(".")


def class_root(path: str | os.PathLike) -> Path:
    """The folder holding the class folders: ``path``, or the folder reached by descending through
    single sub-folders (``EuroSAT_RGB/``, ``eurosat/2750/``)."""
    root = Path(path)
    for _ in range(4):
        subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))]
        if len(subdirs) == 1 and not any(_is_image(p.name) for p in root.iterdir() if p.is_file()):
            inner = subdirs[0]
            if not any(_is_image(f.name) for f in inner.iterdir() if f.is_file()):
                root = inner
                continue
        break
    return root


def _folder_entries(root: Path) -> tuple[list[ImageFile], list[str]]:
    """ImageFolder's listing (``torchvision.datasets.folder.make_dataset``'s order) of the non-hidden class
    folders, following links only inside ``root`` and once (:func:`nasattn.data.walk.walk_classes`), and notes."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    if not classes:
        raise DataError(f"no class folders in {root}: expected one sub-folder of images per class\n{HOW_TO_GET_DATA}")
    samples, notes = walk_classes(root, classes, _is_image)
    entries = [ImageFile(cls, os.path.relpath(f, root), Path(f).read_bytes) for cls, f in samples]
    if not entries:
        raise DataError(f"no images found in {root}: expected one sub-folder of images per class\n{HOW_TO_GET_DATA}")
    return entries, notes


def _zip_entries(path: Path) -> tuple[list[ImageFile], list[str]]:
    """The zip's image members (each name once: the last, which is what ``ZipFile.read`` reads; no
    symlink members) in ImageFolder's order over the extraction, and notes on what was left out."""
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: i for i in zf.infolist()
                   if not i.is_dir() and _is_image(i.filename) and "__MACOSX" not in i.filename}
        repeated = sum(1 for i in zf.infolist() if i.filename in members) - len(members)
    links = [n for n, i in members.items() if stat.S_ISLNK(i.external_attr >> 16)]
    infos = [i for n, i in members.items() if n not in links]
    notes = [f"{path.name}: {repeated} repeated member name(s) counted once"] if repeated else []
    notes += [f"{path.name}: {len(links)} symlink member(s) not followed ({', '.join(links[:5])})"] if links else []
    parts = [Path(i.filename).parts for i in infos]
    if not parts:
        raise DataError(f"no images found in {path}\n{HOW_TO_GET_DATA}")
    # class = the folder right above the image, below the longest common prefix
    depth = min(len(p) for p in parts)
    common = 0
    while common < depth - 2 and len({p[common] for p in parts}) == 1:
        common += 1
    holder = _ZipHolder(path)
    entries = [ImageFile(p[common], i.filename, holder.reader(i.filename)) for i, p in zip(infos, parts) if len(p) >= common + 2]
    if not entries:
        raise DataError(f"{path}: images must sit in one folder per class, e.g. EuroSAT_RGB/Forest/x.jpg")
    entries.sort(key=_walk_order)
    return entries, notes


def _walk_order(e: ImageFile) -> tuple[str, str, str]:
    """ImageFolder's order over the extracted files: class, then ``sorted(os.walk(...))`` (folder path
    as a string, then file name)."""
    p = PurePosixPath(e.name)
    return e.cls, str(p.parent), p.name


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


def _fingerprint(path: Path, kind: str, entries: list[ImageFile], image_size: int | None, limit: int) -> str:
    h = hashlib.sha256(f"nasattn-cache-v{CACHE_VERSION}|{kind}|{image_size}|{limit}".encode())
    if kind == "zip":
        for e in entries:
            h.update(repr((e.cls, *e.read.signature)).encode())  # type: ignore[attr-defined]
    else:
        root = class_root(path)
        for e in entries:
            st = (root / e.name).stat()
            h.update(repr((e.cls, e.name, st.st_size, st.st_mtime_ns)).encode())
    return h.hexdigest()[:20]


# ------------------------------------------------------------------------------------------ decoding
def _iter_progress(entries: list[ImageFile], enabled: bool, label: str) -> Iterator[ImageFile]:
    if not enabled:
        yield from entries
        return
    from rich.progress import track

    yield from track(entries, description=f"decoding {label}", transient=True)


def _decode(path: Path, entries: list[ImageFile], key: str, image_size: int | None, progress: bool,
            limit: int) -> ImageDataset:
    classes = sorted({e.cls for e in entries})
    index = {c: i for i, c in enumerate(classes)}
    images, labels, names, skipped, reasons, converted, sizes = [], [], [], [], [], Counter(), Counter()
    for e in _iter_progress(entries, progress, path.name):
        try:
            img, what = decode_image(e.read(), image_size, limit)
            if what:
                converted[what] += 1
        except Exception as err:  # noqa: BLE001 - a corrupt file is reported by name, not fatal
            skipped.append(e.name)
            reasons.append(f"{e.name} ({(str(err).splitlines() or [''])[0] or type(err).__name__})")
            continue
        sizes[tuple(img.shape[-2:])] += 1
        images.append(img if image_size is None else fit_image(img, image_size))  # one full-size image at a time
        labels.append(index[e.cls])
        names.append(e.name)
    if not images:
        raise DataError(f"none of the {len(entries)} images in {path} could be decoded (first: {reasons[0]})")
    notes = [f"{path.name}: {n} of {len(images)} images {what}" for what, n in converted.most_common()]
    size, why = image_size, ""
    if size is None and len(sizes) > 1:
        size, why = min(sizes.most_common(1)[0][0]), " (no image size given: the shorter side of the most common size)"
        images, labels = _fit_within(images, labels, names, size, limit, (skipped, reasons))
    if size is not None:
        changed = sum(n for hw, n in sizes.items() if hw != (size, size))
        if changed:
            found = ", ".join(f"{w}x{h} ({n})" for (h, w), n in sizes.most_common(6)) + (", ..." if len(sizes) > 6 else "")
            notes.append(
                f"{path.name}: {changed} of {len(images)} images were not {size}x{size}: {RESIZE_RULE} to "
                f"{size}x{size}{why}; sizes found (WxH): {found}"
            )
    if skipped:
        shown = ", ".join(reasons[:10]) + (f", and {len(reasons) - 10} more" if len(reasons) > 10 else "")
        notes.append(f"{path}: skipped {len(skipped)} unreadable or oversized image(s): {shown}")
    return ImageDataset(
        torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes, str(path), key, skipped, notes
    )


def _fit_within(images: list[torch.Tensor], labels: list[int], names: list[str], size: int, limit: int,
                skip: tuple[list[str], list[str]]) -> tuple[list[torch.Tensor], list[int]]:
    """Fit every image to ``size`` (mixed sizes, no size given), skipping those whose resized copy would
    exceed ``limit`` pixels (their names and reasons appended to ``skip``)."""
    kept, kept_labels = [], []
    for img, label, name in zip(images, labels, names):
        try:
            check_budget(img.shape[-1], img.shape[-2], size, limit)
        except OverBudget as err:
            skip[0].append(name)
            skip[1].append(f"{name} ({err})")
            continue
        kept.append(fit_image(img, size))
        kept_labels.append(label)
    return kept, kept_labels


def _save_cache(cache_file: Path, ds: ImageDataset) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        blob = {"images": ds.images, "labels": ds.labels, "classes": ds.classes, "skipped": ds.skipped, "notes": ds.notes}
        torch.save(blob, tmp)
        os.replace(tmp, cache_file)
    except OSError as e:  # a read-only home still trains, just without the cache
        log.warning("could not write the dataset cache %s (%s)", cache_file, e)
