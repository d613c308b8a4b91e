"""``nasattn bench``: the CLI record, and that the engine and the naive pipeline train the same thing."""

from __future__ import annotations

import json
import zipfile
from collections import Counter

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nasattn.bench import NaiveOptions, engine_throughput, image_folder_root, naive_loader, naive_throughput, naive_train_set
from nasattn.cli.main import app
from nasattn.data import MINI_DIR, load_dataset, normalize, split_dataset
from nasattn.recipe import Recipe
from nasattn.engine import train
from nasattn.engine.trainer import channel_stats
from nasattn.presets import get_preset

WIDTH = 0.125
BS = 8


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: tiny steps on a loaded 2-core machine run several times faster than with two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("eurosat-mini")
    p = get_preset("balanced")
    recipe = Recipe.model_validate({**p.recipe_dict, "batch_size": BS, "augment": "none", "epochs": 1})
    splits = split_dataset(ds.labels, recipe.split_ratios, recipe.split_seed, recipe.stratify)
    train_idx = np.asarray(splits.train, dtype=np.int64)
    mean, std = channel_stats(ds.images, train_idx)
    return ds, p.arch.scaled(WIDTH), recipe, train_idx, mean, std


def test_bench_cli_writes_both_pipelines_and_a_ratio(tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, [
        "bench", "--data", "eurosat-mini", "--width-mult", str(WIDTH), "--batch-size", str(BS), "--steps", "1",
        "--warmup", "0", "--workers", "1", "--threads", "1", "--amp", "off", "--json", str(out),
    ], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "engine" in res.output and "naive" in res.output and "images/s" in res.output
    rec = json.loads(out.read_text())
    assert set(rec["pipelines"]) == {"engine", "engine_fp32_nchw", "naive"}
    same = rec["pipelines"]["engine_fp32_nchw"]["settings"]
    assert (same["amp"], same["channels_last"]) == ("off", False)
    assert rec["ratio_same_precision"] == pytest.approx(rec["pipelines"]["engine_fp32_nchw"]["images_per_second"]
                                                        / rec["pipelines"]["naive"]["images_per_second"])
    for r in rec["pipelines"].values():
        assert r["images_per_second"] == pytest.approx(BS / r["timed_seconds"]) and r["timed_images"] == BS
        assert r["seconds_per_epoch"] == pytest.approx(350 / r["images_per_second"])  # n_train at the timed rate
    assert rec["config"]["n_train"] == 350 and rec["config"]["width_mult"] == WIDTH
    for key in ("cpu", "cpu_count", "torch", "gpu"):
        assert key in rec["machine"]
    assert rec["date"] and rec["command"].startswith("nasattn bench")
    assert rec["pipelines"]["naive"]["settings"]["num_workers"] == 1
    assert rec["config"]["amp"] == "off" and rec["pipelines"]["engine"]["settings"]["amp"] == "off"
    ops = rec["ops_per_step"]
    assert ops["mode"] == "eager" and ops["by_op"]["convolution"] >= 1 and ops["ops_per_step"] >= sum(ops["top_ops"].values())
    assert f"{ops['ops_per_step']:.0f} aten ops per training step" in " ".join(res.output.split())


def _timed(name: str, ips: float) -> dict:
    settings = {"amp": "off", "channels_last": False, "compile": False} if name == "engine" else {"num_workers": 1}
    return {"pipeline": name, "images_per_second": ips, "seconds_per_epoch": 350 / ips if ips else float("nan"),
            "seconds_per_epoch_measured": False, "timed_images": BS, "settings": settings}


@pytest.mark.parametrize(("engine_ips", "naive_ips", "shown"), [(300.0, 120.0, "2.50x"), (50.0, 200.0, "0.25x"),
                                                               (80.0, 0.0, "n/a")])
def test_bench_ratio_is_engine_over_naive_images_per_second(tmp_path, monkeypatch, engine_ips, naive_ips, shown):
    """With the two timings fixed, the record's ratio and the printed line are engine/naive (n/a when naive is 0)."""
    from nasattn.bench import measure

    monkeypatch.setattr(measure, "engine_throughput", lambda *a, **k: _timed("engine", engine_ips))
    monkeypatch.setattr(measure, "naive_throughput", lambda *a, **k: _timed("naive", naive_ips))
    monkeypatch.setattr(measure, "ops_per_step", lambda *a, **k: {"ops_per_step": 1.0})
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "--data", "eurosat-mini", "--width-mult", str(WIDTH), "--batch-size",
                                   str(BS), "--amp", "off", "--json", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    ratio = json.loads(out.read_text())["ratio"]
    assert (ratio is None or ratio != ratio) if shown == "n/a" else ratio == pytest.approx(float(shown[:-1]))
    assert f"engine / naive: {shown}" in " ".join(res.output.split())


def test_bench_bad_input_exits_2():
    res = CliRunner().invoke(app, ["bench", "--data", "eurosat-mini", "--augment", "dihedral"])
    assert res.exit_code == 2 and "augment" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["bench", "--preset", "nope", "--data", "eurosat-mini"])
    assert res.exit_code == 2 and "unknown preset" in res.output
    res = CliRunner().invoke(app, ["bench", "--data", "eurosat-mini", "--amp", "fp8"])
    assert res.exit_code == 2 and "amp" in res.output and "bf16" in res.output and "Traceback" not in res.output


def test_naive_pipeline_sees_the_engine_training_images(setup):
    ds, _, _, train_idx, mean, std = setup
    subset = naive_train_set(ds, train_idx, mean, std, augment="none")
    assert len(subset) == len(train_idx)
    folder = subset.dataset
    naive_labels = Counter(folder.targets[j] for j in subset.indices)
    assert naive_labels == Counter(ds.labels[train_idx].tolist())
    x, y = next(iter(naive_loader(subset, BS, num_workers=0, shuffle=False)))
    expected = normalize(ds.images[torch.as_tensor(train_idx[:BS])], mean, std)
    assert x.dtype == torch.float32 and x.shape == expected.shape
    assert torch.allclose(x, expected, atol=1e-5, rtol=0)
    assert torch.equal(y, ds.labels[torch.as_tensor(train_idx[:BS])])


def test_first_step_loss_agrees(setup):
    """Same seed, same init, same first batch (the engine's permutation), no augmentation: same loss."""
    ds, spec, recipe, train_idx, mean, std = setup
    res = train(spec, recipe, ds, seed=3, device="cpu", progress=False, max_steps_per_epoch=1, evaluate=False)
    engine_loss = res.history[0]["train_loss"]
    naive = naive_throughput(spec, recipe, ds, train_idx, mean, std,
                             NaiveOptions(steps=1, warmup=0, num_workers=0, device="cpu", seed=3, augment="none"))
    assert naive["first_loss"] == pytest.approx(engine_loss, abs=1e-3)
    assert naive["timed_images"] == BS


def test_engine_throughput_warmup_then_timed(setup):
    ds, spec, recipe, *_ = setup
    r = engine_throughput(spec, recipe, ds, steps=1, warmup=1, device="cpu")
    assert r["timed_steps"] == 1 and r["timed_images"] == BS
    assert r["images_per_second"] == pytest.approx(BS / r["timed_seconds"]) and 0 < r["timed_seconds"] < 300
    assert r["settings"]["evaluation_skipped"]
    assert r["settings"]["channels_last"] is (r["settings"]["amp"] == "bf16")  # auto: channels_last under CPU bf16


def test_zip_source_is_extracted_for_image_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NASATTN_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "mini.zip"
    files = sorted(p for p in MINI_DIR.rglob("*.jpg"))[:30]
    with zipfile.ZipFile(archive, "w") as zf:
        for f in files:
            zf.write(f, f"EuroSAT_RGB/{f.relative_to(MINI_DIR).as_posix()}")
    ds = load_dataset(archive)
    root, names = image_folder_root(ds)
    assert len(names) == len(ds) and all((root / n).is_file() for n in names)
    assert image_folder_root(ds)[0] == root  # extracted once, then reused
    idx = np.arange(len(ds))
    subset = naive_train_set(ds, idx, [0.0] * 3, [1.0] * 3, augment="none")
    x, _ = subset[len(ds) - 1]
    assert torch.allclose(x * 255, ds.images[-1].float(), atol=1e-3)


def test_profile_step_reports_throughput_and_operators_with_either_dropblock():
    from nasattn.bench.profile import profile_step

    threads = torch.get_num_threads()
    for tv in (False, True):
        ips, table = profile_step("balanced", 0.125, batch_size=4, steps=1, amp="off", threads=threads, rows=200,
                                  torchvision_dropblock=tv)
        assert 0 < 4 / ips < 300 and "Self CPU" in table  # one timed step of 4 images: finite, under 5 minutes
        assert ("aten::max_pool2d" in table) == tv and ("aten::geometric_" in table) != tv  # which DropBlock ran
    ips, table = profile_step("balanced", 0.125, batch_size=4, steps=1, amp="bf16", threads=threads, rows=200,
                              channels_last="on")
    assert 0 < 4 / ips < 300 and "MeanPoolBackward" in table  # coord/SE pooling with its layout-keeping gradient


@pytest.mark.slow
def test_tune_overhead_trains_the_same_run_both_ways():
    """The direct run and the Tune trial train the same model from the same seed: same test accuracy."""
    from nasattn.bench.overhead import tune_overhead

    res = tune_overhead("baseline", "eurosat-mini", epochs=2, width_mult=0.125, cpus=1, checkpoint_every=1)
    assert 0 < res["ray_start_seconds"] and 0 < res["tune_trial_seconds"] and 0 < res["direct_seconds"]
    assert res["ray_start_seconds"] + res["tune_trial_seconds"] <= res["tune_total_seconds"]  # parts of the whole
    assert res["added_fraction_trial"] == pytest.approx(res["tune_trial_seconds"] / res["direct_seconds"] - 1)
    assert res["tune_test_accuracy"] == res["direct_test_accuracy"]
