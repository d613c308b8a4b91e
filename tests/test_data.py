"""Data: sources (bundled sample, folder, nested folder, zip, env var), cache, splits, weights, augmentation."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nasattn.data import (
    DataError,
    DataNotFoundError,
    compute_class_weights,
    load_dataset,
    make_eval_transform,
    make_train_transform,
    split_dataset,
    stratified_subset,
)
from nasattn.data.sources import ENV_DATA, MINI_DIR, MINI_NAME

CLASSES = sorted(p.name for p in MINI_DIR.iterdir() if p.is_dir())


def _small_tree(root: Path, per_class: int = 3, classes: int = 3) -> Path:
    """A copy of a few real EuroSAT-mini images in ImageFolder layout."""
    for cls in CLASSES[:classes]:
        (root / cls).mkdir(parents=True)
        for f in sorted((MINI_DIR / cls).iterdir())[:per_class]:
            shutil.copy(f, root / cls / f.name)
    return root


def test_bundled_sample_is_real_eurosat():
    ds = load_dataset(MINI_NAME)
    assert len(ds) == 500 and len(ds.classes) == 10
    assert ds.images.dtype == torch.uint8 and tuple(ds.images.shape[1:]) == (3, 64, 64)
    assert list(ds.class_counts().values()) == [50] * 10
    assert "AnnualCrop" in ds.classes and "SeaLake" in ds.classes
    assert ds.images.float().std() > 10  # real pixels, not a constant


def test_folder_nested_folder_and_zip_give_the_same_images(tmp_path):
    flat = _small_tree(tmp_path / "flat")
    _small_tree(tmp_path / "nested" / "eurosat" / "2750")  # the same images, one folder deeper
    zpath = tmp_path / "EuroSAT_RGB.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted(flat.rglob("*.jpg")):
            z.write(f, f"EuroSAT_RGB/{f.relative_to(flat)}")
    cache = tmp_path / "cache"
    a = load_dataset(flat, cache_dir=cache)
    b = load_dataset(tmp_path / "nested", cache_dir=cache)
    c = load_dataset(zpath, cache_dir=cache)
    for ds in (b, c):
        assert ds.classes == a.classes == CLASSES[:3]
        assert torch.equal(ds.labels, a.labels)
        assert torch.equal(ds.images, a.images)


def test_env_var_names_the_dataset(tmp_path, monkeypatch):
    root = _small_tree(tmp_path / "d", per_class=2, classes=2)
    monkeypatch.setenv(ENV_DATA, str(root))
    ds = load_dataset(None, cache_dir=tmp_path / "cache")
    assert len(ds) == 4 and ds.classes == CLASSES[:2]


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_DATA, raising=False)
    with pytest.raises(DataNotFoundError) as e:
        load_dataset(tmp_path / "nope", cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert "nope" in msg and "eurosat-mini" in msg and ENV_DATA in msg and ".zip" in msg
    with pytest.raises(DataNotFoundError, match=ENV_DATA):
        load_dataset(None, cache_dir=tmp_path / "cache")


def test_cache_is_reused_and_invalidated_when_the_source_changes(tmp_path):
    root = _small_tree(tmp_path / "d", per_class=2, classes=2)
    cache = tmp_path / "cache"
    first = load_dataset(root, cache_dir=cache)
    files = list(cache.glob("*.pt"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = load_dataset(root, cache_dir=cache)
    assert again.fingerprint == first.fingerprint and files[0].stat().st_mtime_ns == stamp  # read, not rewritten
    # add one image: new key, fresh decode
    extra = sorted((MINI_DIR / CLASSES[0]).iterdir())[10]
    shutil.copy(extra, root / CLASSES[0] / extra.name)
    changed = load_dataset(root, cache_dir=cache)
    assert changed.fingerprint != first.fingerprint and len(changed) == len(first) + 1
    assert len(list(cache.glob("*.pt"))) == 2


def test_a_damaged_cache_is_rebuilt(tmp_path):
    root = _small_tree(tmp_path / "d", per_class=2, classes=2)
    cache = tmp_path / "cache"
    first = load_dataset(root, cache_dir=cache)
    (f,) = cache.glob("*.pt")
    f.write_bytes(b"not a torch file")
    again = load_dataset(root, cache_dir=cache)
    assert torch.equal(again.images, first.images)


def test_corrupt_images_are_skipped_and_named(tmp_path):
    root = _small_tree(tmp_path / "d", per_class=2, classes=2)
    (root / CLASSES[1] / "broken_1.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    ds = load_dataset(root, cache_dir=tmp_path / "cache")
    assert len(ds) == 4
    assert any("broken_1.jpg" in s for s in ds.skipped)
    assert any("broken_1.jpg" in n for n in ds.notes)


def test_a_folder_with_no_readable_images_is_a_data_error(tmp_path):
    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "a" / "x.jpg").write_bytes(b"junk")
    with pytest.raises(DataError):
        load_dataset(tmp_path / "d", cache_dir=tmp_path / "cache")


def test_split_is_stratified_disjoint_and_deterministic():
    labels = np.repeat(np.arange(10), [100, 80, 120, 60, 90, 100, 100, 70, 110, 170])
    s = split_dataset(labels, (0.7, 0.15, 0.15), seed=42)
    all_idx = np.concatenate([s.train, s.val, s.test])
    assert len(all_idx) == len(labels) and len(np.unique(all_idx)) == len(labels)
    assert abs(len(s.train) - 0.7 * len(labels)) <= 1 and abs(len(s.val) - len(s.test)) <= 1
    overall = np.bincount(labels) / len(labels)
    for part in (s.train, s.val, s.test):
        frac = np.bincount(labels[part], minlength=10) / len(part)
        assert np.abs(frac - overall).max() < 0.01
    same = split_dataset(labels, (0.7, 0.15, 0.15), seed=42)
    other = split_dataset(labels, (0.7, 0.15, 0.15), seed=7)
    assert np.array_equal(s.test, same.test) and not np.array_equal(s.test, other.test)
    with pytest.raises(ValueError, match="sum"):
        split_dataset(labels, (0.7, 0.2, 0.2))


def test_stratified_subset_keeps_class_proportions():
    labels = np.repeat(np.arange(4), [400, 200, 200, 200])
    keep = stratified_subset(labels, 0.25, seed=0)
    assert list(np.bincount(labels[keep])) == [100, 50, 50, 50]


def test_class_weights_against_hand_values():
    labels = [0] * 6 + [1] * 3 + [2] * 1
    w = compute_class_weights(labels, 3, "balanced")
    torch.testing.assert_close(w, torch.tensor([10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)]))
    beta = 0.9
    raw = np.array([(1 - beta) / (1 - beta**n) for n in (6, 3, 1)])
    e = compute_class_weights(labels, 3, "effective_number", beta=beta)
    torch.testing.assert_close(e, torch.tensor(raw * 3 / raw.sum(), dtype=torch.float32))
    assert compute_class_weights(labels, 3, "none") is None
    assert compute_class_weights(labels, 4, "balanced")[3] == 0  # an absent class


@pytest.mark.parametrize("augment", ["dihedral", "flips", "paper", "none"])
def test_train_transform_shapes_dtype_and_determinism(augment):
    x = load_dataset(MINI_NAME).images[:16]
    t = make_train_transform(augment, crop_pad=4 if augment == "flips" else 0)
    a = t(x, torch.Generator().manual_seed(1))
    b = t(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b)
    if augment != "none":
        c = t(x, torch.Generator().manual_seed(2))
        assert not torch.equal(a, c)


def test_dihedral_augment_only_permutes_pixels():
    x = load_dataset(MINI_NAME).images[:8]
    t = make_train_transform("dihedral", mean=(0, 0, 0), std=(1 / 255, 1 / 255, 1 / 255))
    y = t(x, torch.Generator().manual_seed(3))
    for i in range(len(x)):  # every output is one of the 8 symmetries of its input
        assert torch.equal(torch.sort(y[i].flatten()).values, torch.sort(x[i].float().flatten()).values)


def test_eval_transform_normalises():
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    y = make_eval_transform((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(x)
    torch.testing.assert_close(y, torch.ones_like(y))


@pytest.mark.fullset
@pytest.mark.skipif(not (Path(__file__).parents[2] / "shared/data/EuroSAT_RGB.zip").exists(), reason="no ../shared")
def test_full_eurosat_zip(tmp_path):
    ds = load_dataset(Path(__file__).parents[2] / "shared/data/EuroSAT_RGB.zip", cache_dir=os.environ.get("NASATTN_CACHE"))
    assert len(ds) == 27000 and len(ds.classes) == 10


def test_a_files_data_field_resolves_relative_to_the_file_then_the_working_directory(tmp_path, monkeypatch):
    from nasattn.config import resolve_data_source

    study_dir, cwd = tmp_path / "studies", tmp_path / "cwd"
    for d in (study_dir / "near", cwd / "here", cwd / "near"):
        d.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("NASATTN_DATA", raising=False)
    assert resolve_data_source("near", study_dir) == str(study_dir / "near")  # both exist: the file's wins
    assert resolve_data_source("here", study_dir) == str(cwd / "here")  # only the working directory's
    assert resolve_data_source("nowhere.zip", study_dir) == str(study_dir / "nowhere.zip")  # named for the error
    assert resolve_data_source("eurosat-mini", study_dir) == "eurosat-mini"
    assert resolve_data_source("s3://bucket/eurosat", study_dir) == "s3://bucket/eurosat"
    assert resolve_data_source(None, study_dir) is None
    monkeypatch.setenv("NASATTN_DATA", "near")
    assert resolve_data_source(None, study_dir) == str(cwd / "near")  # the variable: the working directory
