"""Bounded inputs: the pixel budget checked from the header, and folder links followed once, inside the root."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from nasattn.data import DataError, list_images, load_dataset
from nasattn.data.decode import ENV_MAX_MEGAPIXELS, OverBudget, decode_image, max_pixels


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _png(size: tuple[int, int], mode: str = "L") -> bytes:
    import io

    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def _two_classes(root: Path, n: int = 3, size: tuple[int, int] = (16, 16)) -> None:
    for cls in ("a", "b"):
        for i in range(n):
            _save(Image.new("RGB", size, (i * 40, 0, 0)), root / cls / f"{i}.png")


# ------------------------------------------------------------------------------------------ pixel budget
def test_thin_strip_is_refused_before_any_pixel_is_resized():
    data = _png((1, 1_000_000))  # about 1 KB on disk, 4.1 gigapixels once fitted to 64 x 64
    assert len(data) < 10_000
    tracemalloc.start()
    with pytest.raises(OverBudget, match=r"1x1000000 .*64x64000000"):
        decode_image(data, size=64, limit=50_000_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50_000_000  # nothing of the 12 GB resize was allocated


def test_budget_is_checked_on_the_header_not_after_decoding(monkeypatch):
    import PIL.ImageFile

    loads = []
    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", lambda self: loads.append(self.size))
    with pytest.raises(OverBudget, match="needs"):
        decode_image(_png((3000, 2000)), limit=5_000_000)
    assert loads == []  # refused before Pillow decoded anything
    assert Image.MAX_IMAGE_PIXELS == 5_000_000  # Pillow's own check follows the same budget


def test_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_MAX_MEGAPIXELS, "0.25")
    assert max_pixels() == 250_000
    monkeypatch.setenv(ENV_MAX_MEGAPIXELS, "lots")
    with pytest.raises(DataError, match=ENV_MAX_MEGAPIXELS):
        max_pixels()


def test_oversized_images_are_skipped_with_a_note_and_the_limit_can_be_raised(tmp_path, monkeypatch):
    root = tmp_path / "d"
    _two_classes(root)
    _save(Image.new("RGB", (1, 5000)), root / "a" / "thin.png")  # 16 x 80,000 = 1.3 MP once fitted to 16
    monkeypatch.setenv(ENV_MAX_MEGAPIXELS, "1")
    ds = load_dataset(root, cache_dir=tmp_path / "cache", image_size=16)
    assert len(ds) == 6 and ds.skipped == [os.path.join("a", "thin.png")]
    assert any("over the budget" in n and ENV_MAX_MEGAPIXELS in n for n in ds.notes)
    monkeypatch.setenv(ENV_MAX_MEGAPIXELS, "2")  # fits now; the cache key changes with the budget
    raised = load_dataset(root, cache_dir=tmp_path / "cache", image_size=16)
    assert len(raised) == 7 and raised.skipped == []


def test_mixed_sizes_without_a_size_skip_what_would_not_fit_the_budget(tmp_path, monkeypatch):
    root = tmp_path / "d"
    _two_classes(root)
    _save(Image.new("RGB", (2, 400)), root / "b" / "strip.png")  # 800 px itself, 16 x 3,200 once fitted to 16
    monkeypatch.setenv(ENV_MAX_MEGAPIXELS, "0.01")
    ds = load_dataset(root, cache_dir=tmp_path / "cache")
    assert tuple(ds.images.shape[1:]) == (3, 16, 16) and ds.skipped == [os.path.join("b", "strip.png")]


# ------------------------------------------------------------------------------------------ folder links
def test_link_loop_is_not_followed_and_nothing_is_relabelled(tmp_path):
    root = tmp_path / "d"
    _two_classes(root)
    (root / "b" / "loop").symlink_to("..")  # b/loop/a/0.png would be class a's image relabelled b
    files, _ = list_images(root)
    assert sorted((e.cls, e.name) for e in files) == sorted(
        (c, os.path.join(c, f"{i}.png")) for c in ("a", "b") for i in range(3))
    ds = load_dataset(root, cache_dir=tmp_path / "cache")
    assert len(ds) == 6
    assert any("not followed" in n and "loop" in n for n in ds.notes)


def test_class_folder_linked_outside_the_root_is_not_walked(tmp_path):
    root = tmp_path / "d"
    _two_classes(root)
    outside = tmp_path / "elsewhere"
    _save(Image.new("RGB", (16, 16)), outside / "secret.png")
    (root / "c").symlink_to(outside)
    (root / "a" / "more").symlink_to(outside)
    ds = load_dataset(root, cache_dir=tmp_path / "cache")
    assert len(ds) == 6 and ds.class_counts()["a"] == 3
    assert any("outside the dataset folder" in n for n in ds.notes)


def test_each_real_file_is_counted_once(tmp_path):
    root = tmp_path / "d"
    _two_classes(root)
    (root / "a" / "same.png").symlink_to(root / "a" / "0.png")  # a second path to one file
    (root / "a" / "inner").mkdir()
    (root / "b" / "alias").symlink_to(root / "a" / "inner")  # a folder reached twice
    files, _ = list_images(root)
    assert len(files) == 6
    assert len({os.path.realpath(root / e.name) for e in files}) == 6


def test_plain_links_inside_the_root_are_followed(tmp_path):
    root = tmp_path / "d"
    _two_classes(root)
    pool = root / ".pool"  # a hidden folder is no class; links into it are inside the root
    _save(Image.new("RGB", (16, 16)), pool / "x.png")
    (root / "a" / "linked").symlink_to(pool)
    assert len(list_images(root)[0]) == 7


def test_zip_members_are_counted_once_and_links_not_followed(tmp_path):
    import stat
    import warnings
    import zipfile

    path = tmp_path / "d.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")  # the duplicate name is the point
        for cls in ("a", "b"):
            for i in range(3):
                zf.writestr(f"top/{cls}/{i}.png", _png((8, 8), "RGB"))
        zf.writestr("top/a/0.png", _png((8, 8), "RGB"))
        link = zipfile.ZipInfo("top/b/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    ds = load_dataset(path, cache_dir=tmp_path / "cache")
    assert len(ds) == 6 and ds.skipped == []
    assert any("repeated member" in n for n in ds.notes) and any("symlink member" in n for n in ds.notes)


# ------------------------------------------------------------------------------------------ class names
def test_class_folder_named_like_a_link_is_no_link_in_the_confusion_matrix():
    from nasattn.report.figures import confusion_matrix

    name = '<a href="https://example.invalid/x">click</a>'
    fig = confusion_matrix([[3, 1], [0, 4]], [name, "b"])
    labels = list(fig.data[0].x) + list(fig.data[0].y)
    assert all("<" not in str(x) for x in labels)
    assert '&lt;a href="https://example.invalid/x"&gt;click&lt;/a&gt;' in labels  # shown literally
