"""``adapt_to_dataset``: a preset made for EuroSAT's 10 classes adapts to other data, or says which --set fixes it."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from nasattn.cli.main import app
from nasattn.config import ConfigError
from nasattn.data import MINI_DIR
from nasattn.engine import adapt_to_dataset
from nasattn.presets import get_preset

runner = CliRunner()
THREE = ["a", "b", "c"]


def test_preset_adapts_head_and_replaces_its_class_weights():
    p = get_preset("balanced")
    assert isinstance(p.recipe.class_weights, list) and len(p.recipe.class_weights) == 10
    spec, recipe, notes = adapt_to_dataset(p.arch, p.recipe, THREE)
    assert spec.num_classes == 3 and recipe.class_weights == "balanced"
    assert len(notes) == 2 and "3 outputs" in notes[0] and "'balanced'" in notes[1]
    assert p.arch.num_classes == 10 and isinstance(p.recipe.class_weights, list)  # inputs untouched
    same = adapt_to_dataset(p.arch, p.recipe, [f"c{i}" for i in range(10)])
    assert same == (p.arch, p.recipe, [])


def test_what_cannot_adapt_names_the_fix():
    p = get_preset("balanced")
    with pytest.raises(ConfigError, match=r"--set class_weights=balanced"):
        adapt_to_dataset(p.arch, p.recipe, THREE, user_class_weights=True)


@pytest.fixture
def three_classes(tmp_path):
    root = tmp_path / "three"
    for name in ("Forest", "River", "Highway"):
        shutil.copytree(MINI_DIR / name, root / name)
    return root


def test_train_preset_on_three_classes_prints_the_notes(three_classes, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    r = runner.invoke(app, ["train", "--preset", "balanced", "--data", str(three_classes), "--epochs", "1",
                            "--width-mult", "0.125", "--threads", "1", "--no-progress", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert "head: 10 -> 3 outputs" in r.output and "using 'balanced' weights" in r.output
    assert "alpha, weight decay alone" in r.output  # the summary shows the alpha control
    bad = runner.invoke(app, ["train", "--preset", "balanced", "--data", str(three_classes), "--epochs", "1",
                              "--set", "class_weights=[1, 2]", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--set class_weights=balanced" in bad.output and "Traceback" not in bad.output
