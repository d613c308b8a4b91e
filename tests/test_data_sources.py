"""Own data: ImageFolder order, the author's random split, the size/channel/bit-depth rule, refusals."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasattn.data import (
    DataError,
    DataNotFoundError,
    list_images,
    load_dataset,
    min_split_size,
    split_dataset,
)
from nasattn.data.sources import MINI_DIR


def _png16(gray: np.ndarray) -> bytes:
    """A 16-bit grayscale PNG written by hand (Pillow writes I;16 too, but this pins the bit depth)."""
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


# ------------------------------------------------------------------------------ order and the paper split
def test_listing_is_imagefolders_order(tmp_path):
    from torchvision.datasets import ImageFolder

    root = tmp_path / "d"
    # names whose sorted order differs between naive orders: digits, a nested folder, a file beside it
    for cls in ("b_cls", "a_cls"):
        for name in ("img_10.png", "img_2.png", "img_1.png", "sub/x.png", "sub-a.png", "sub/a/y.png"):
            _save(Image.new("RGB", (8, 8), (len(name), 0, 0)), root / cls / name)
    files, kind = list_images(root)
    folder = ImageFolder(str(root))
    assert kind == "folder"
    assert [(e.cls, str(root / e.name)) for e in files] == [(folder.classes[t], p) for p, t in folder.samples]
    ds = load_dataset(root, cache_dir=tmp_path / "cache")
    assert ds.labels.tolist() == folder.targets


def test_paper_split_is_the_authors_random_split_over_imagefolder(tmp_path):
    """The author: ImageFolder, lengths int(0.7 n), int(0.15 n), rest; random_split with manual_seed(42)."""
    from torch.utils.data import random_split
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(MINI_DIR))
    ds = load_dataset("eurosat-mini")
    n = len(folder)
    lengths = [int(0.7 * n), int(0.15 * n), n - int(0.7 * n) - int(0.15 * n)]
    expected = random_split(folder, lengths, generator=torch.Generator().manual_seed(42))
    s = split_dataset(ds.labels, (0.7, 0.15, 0.15), seed=42, stratify=False)
    for got, want in zip((s.train, s.val, s.test), expected):
        assert got.tolist() == sorted(want.indices)
    # same images by file name, not only by index
    names = [e.name for e in list_images("eurosat-mini")[0]]
    test_files = {Path(folder.samples[i][0]).relative_to(MINI_DIR).as_posix() for i in expected[2].indices}
    assert {names[i] for i in s.test} == test_files


def test_on_full_eurosat_size_the_fraction_call_gives_the_same_partition():
    """The issue quotes random_split(ds, [0.7, 0.15, 0.15]); on 27,000 images it equals the author's lengths."""
    from torch.utils.data import random_split

    labels = np.arange(27000) % 10
    s = split_dataset(labels, (0.7, 0.15, 0.15), seed=42, stratify=False)
    frac = random_split(range(27000), [0.7, 0.15, 0.15], generator=torch.Generator().manual_seed(42))
    assert [len(s.train), len(s.val), len(s.test)] == [18900, 4050, 4050]
    assert s.test.tolist() == sorted(frac[2].indices) and s.val.tolist() == sorted(frac[1].indices)


# ------------------------------------------------------------------------------ too small to split
@pytest.mark.parametrize("stratify", [True, False])
def test_a_dataset_too_small_for_the_split_is_refused_with_the_minimum(stratify):
    k = 3
    need = min_split_size(k, (0.7, 0.15, 0.15), stratify)
    if stratify:
        ok = np.repeat(np.arange(k), need)
        short = np.concatenate([np.repeat(np.arange(k - 1), need - 1), np.full(need - 2, k - 1)])
    else:
        ok, short = np.arange(need) % k, np.arange(need - 1) % k
    split_dataset(ok, stratify=stratify)  # exactly the minimum works (balanced classes)
    with pytest.raises(DataError, match=f"at least {need} images") as e:
        split_dataset(short, stratify=stratify, classes=["forest", "river", "sea"])
    if stratify:
        assert f"sea, has {need - 2}" in str(e.value)


def test_train_cli_refuses_a_too_small_dataset_with_exit_2(tmp_path):
    from typer.testing import CliRunner

    from nasattn.cli.main import app

    root = tmp_path / "tiny"
    for c in range(2):
        for i in range(3):
            _save(Image.new("RGB", (64, 64), (40 * c, 90, 9 * i)), root / f"c{c}" / f"{i}.png")
    res = CliRunner().invoke(app, ["train", "--preset", "baseline", "--data", str(root), "--epochs", "1",
                                   "--no-progress", "--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    assert "too small" in res.output and "at least" in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------------------ channels, bit depth, sizes
def test_grayscale_rgba_16bit_nonsquare_and_mixed_sizes(tmp_path):
    root = tmp_path / "d"
    _save(Image.new("L", (64, 64), 77), root / "a" / "gray.png")
    _save(Image.new("RGBA", (64, 64), (10, 20, 30, 0)), root / "a" / "rgba.png")  # transparent: alpha dropped
    (root / "a" / "deep.png").write_bytes(_png16(np.full((64, 64), 32896, dtype=np.uint16)))  # 0x8080
    wide = Image.new("RGB", (128, 64), (0, 255, 0))  # red | green | green | blue in quarters
    wide.paste((255, 0, 0), (0, 0, 32, 64))
    wide.paste((0, 0, 255), (96, 0, 128, 64))
    _save(wide, root / "b" / "wide.png")
    _save(Image.new("RGB", (90, 90), (200, 100, 50)), root / "b" / "big.png")
    _save(Image.new("RGB", (40, 40), (5, 6, 7)), root / "b" / "small.png")
    ds = load_dataset(root, cache_dir=tmp_path / "cache", image_size=64)
    assert tuple(ds.images.shape) == (6, 3, 64, 64) and ds.images.dtype == torch.uint8
    by_name = {e.name: ds.images[i] for i, e in enumerate(list_images(root)[0])}
    assert (by_name["a/gray.png"] == 77).all()
    assert by_name["a/rgba.png"][:, 0, 0].tolist() == [10, 20, 30] and (by_name["a/rgba.png"][0] == 10).all()
    assert (by_name["a/deep.png"] == 128).all()  # scaled, not saturated to 255
    assert (by_name["b/wide.png"] == torch.tensor([0, 255, 0], dtype=torch.uint8).view(3, 1, 1)).all()  # centre crop
    assert by_name["b/big.png"][:, 10, 10].tolist() == [200, 100, 50]
    assert by_name["b/small.png"][:, 30, 30].tolist() == [5, 6, 7]
    notes = [n for n in ds.notes if "64x64" in n]
    assert len(notes) == 1 and "3 of 6" in notes[0] and "90x90 (1)" in notes[0] and "128x64 (1)" in notes[0]
    assert "bilinear" in notes[0] and "centre" in notes[0]
    conversions = " | ".join(n for n in ds.notes if "64x64" not in n)  # what each image's mode needed
    assert "1 of 6 images 16-bit scaled to 8-bit" in conversions and "1 of 6 images alpha dropped" in conversions
    assert "1 of 6 images grayscale -> RGB" in conversions
    again = load_dataset(root, cache_dir=tmp_path / "cache", image_size=64)  # from the cache: the same notes
    assert torch.equal(again.images, ds.images) and again.notes == ds.notes


def test_the_input_size_wins_over_the_first_images_size(tmp_path):
    root = tmp_path / "d"
    for c in ("a", "b"):
        _save(Image.new("RGB", (90, 90), (1, 2, 3)), root / c / "0_first.png")
        _save(Image.new("RGB", (64, 64), (1, 2, 3)), root / c / "1_second.png")
    assert tuple(load_dataset(root, cache_dir=tmp_path / "c", image_size=32).images.shape[1:]) == (3, 32, 32)
    assert tuple(load_dataset(root, cache_dir=tmp_path / "c", image_size=64).images.shape[1:]) == (3, 64, 64)


def test_train_cli_resizes_to_the_specs_input_size(tmp_path):
    from typer.testing import CliRunner

    from nasattn.cli.main import app

    root = tmp_path / "big"
    for c in range(2):
        for i in range(8):
            _save(Image.new("RGB", (90, 90), (100 * c, 20 * i, 7)), root / f"c{c}" / f"{i}.png")
    res = CliRunner().invoke(app, ["train", "--preset", "baseline", "--data", str(root), "--epochs", "1",
                                   "--width-mult", "0.125", "--no-progress", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    import json

    import pandas as pd

    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv")  # every image was decoded, resized and tested
    assert m["n_train"] + m["n_val"] + m["n_test"] == 16 and len(pred) == m["n_test"] > 0
    assert m["test_accuracy"] == (pred["label"] == pred["pred"]).mean()


# ------------------------------------------------------------------------------ refusals and messages
def test_a_one_class_dataset_is_refused_before_training(tmp_path):
    from typer.testing import CliRunner

    from nasattn.cli.main import app

    for i in range(20):
        _save(Image.new("RGB", (64, 64), (i, 0, 0)), tmp_path / "d" / "only" / f"{i}.png")
    ds = load_dataset(tmp_path / "d", cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="at least 2 classes") as e:
        split_dataset(ds.labels, classes=ds.classes)
    assert "(only)" in str(e.value)
    with pytest.raises(DataError, match="at least 2 classes"):
        split_dataset(ds.labels, stratify=False)
    res = CliRunner().invoke(app, ["train", "--preset", "baseline", "--data", str(tmp_path / "d"), "--epochs", "1",
                                   "--no-progress", "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "at least 2 classes" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_an_unreadable_image_is_named_once_without_a_buffer_repr(tmp_path):
    for c in ("a", "b"):
        _save(Image.new("RGB", (64, 64)), tmp_path / "d" / c / "ok.png")
    (tmp_path / "d" / "b" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    ds = load_dataset(tmp_path / "d", cache_dir=tmp_path / "cache")
    assert ds.skipped == ["b/broken.jpg"]
    hits = [n for n in ds.notes if "broken.jpg" in n]
    assert len(hits) == 1 and "BytesIO" not in " ".join(ds.notes)


def test_a_failed_download_says_where_and_why_and_leaves_no_folder(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, root: str, download: bool = False) -> None:
            (Path(root) / "eurosat").mkdir(parents=True)  # as torchvision does before fetching
            raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "EuroSAT", Offline)
    target = tmp_path / "cache" / "eurosat-data"
    with pytest.raises(DataNotFoundError) as e:
        load_dataset(target, download=True, cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert str(target / "eurosat") in msg and "network is unreachable" in msg and "--download" in msg
    assert not target.exists() and not (tmp_path / "cache").exists()


def test_images_read_back_as_decoded_by_pillow_for_plain_rgb(tmp_path):
    """The 16-bit path must not touch ordinary 8-bit images."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for c in ("a", "b"):
        _save(Image.fromarray(arr), tmp_path / "d" / c / "x.png")
    ds = load_dataset(tmp_path / "d", cache_dir=tmp_path / "cache", image_size=64)
    assert torch.equal(ds.images[0], torch.from_numpy(arr).permute(2, 0, 1))
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
