"""CLI smoke tests: listing, a real short training on eurosat-mini, and bad input (exit 2, no traceback)."""

import json

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from nasattn.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_blocks_lists_every_kind():
    res = invoke("blocks")
    assert res.exit_code == 0
    for name in ("residual", "cbam", "coord", "learnable_alpha", "progressive", "gap_linear"):
        assert name in res.stdout
    assert invoke("blocks", "nonsense").exit_code == 2


def test_presets_table():
    res = invoke("presets")
    assert res.exit_code == 0
    for text in ("13.12M", "9.91M", "4.29M", "97.23%", "94.30%"):
        assert text in res.stdout


@pytest.mark.slow
def test_train_on_eurosat_mini_writes_every_output(tmp_path, monkeypatch):
    monkeypatch.setenv("NASATTN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        res = invoke("train", "--preset", "balanced", "--data", "eurosat-mini", "--epochs", "2", "--width-mult", "0.125",
                     "--batch-size", "32", "--subset", "0.5", "--threads", "1", "--out", str(out), "--no-progress")
    finally:
        torch.set_num_threads(threads)  # the command sets it for its (here: the test's) process
    assert res.exit_code == 0, res.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "val_accuracy", "kappa", "per_class_accuracy", "macro_f1", "confidence_gap", "ece",
                "params", "flops", "layers", "conv_layers", "train_seconds", "alpha"):
        assert key in metrics, key
    assert metrics["layers"] == 12 and len(metrics["alpha"]) == 11
    assert metrics["torch_threads"] == 1
    assert len(metrics["per_class_accuracy"]) == 10
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert any(c.startswith("alpha/") for c in history.columns)
    arch = yaml.safe_load((out / "arch.yaml").read_text())
    assert arch["stages"][0]["width"] == 8  # 64 * 0.125
    assert (out / "model.pt").stat().st_size > 0


def test_train_bad_input_exits_2_with_a_message(tmp_path, monkeypatch):
    monkeypatch.delenv("NASATTN_DATA", raising=False)
    res = runner.invoke(app, ["train", "--preset", "nope"])
    assert res.exit_code == 2 and "unknown preset 'nope'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train"])
    assert res.exit_code == 2 and "--preset" in res.output
    bad = tmp_path / "arch.yaml"
    bad.write_text("stages: [{width: 8, attention: {type: cbma}}]\n")
    res = runner.invoke(app, ["train", "--arch", str(bad), "--data", "eurosat-mini"])
    assert res.exit_code == 2 and "stages[0].attention" in res.output and "cbam" in res.output
    res = runner.invoke(app, ["train", "--preset", "baseline", "--data", str(tmp_path / "missing.zip")])
    assert res.exit_code == 2 and "missing.zip" in res.output
    res = runner.invoke(app, ["train", "--preset", "baseline", "--data", "eurosat-mini", "--set", "lr=-1"])
    assert res.exit_code == 2 and "lr" in res.output
