"""Protocols: one table of what default / paper / paper-as-run set, applied by ``nasattn train``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nasattn.cli.main import app
from nasattn.config import ConfigError
from nasattn.recipe import Recipe
from nasattn.presets import get_preset
from nasattn.protocols import apply_protocol, protocol_names


def _applied(protocol: str, preset: str):
    p = get_preset(preset)
    spec, recipe = apply_protocol(protocol, p.arch, dict(p.recipe_dict))
    return p, spec, Recipe.model_validate(recipe)


def test_default_changes_nothing():
    p, spec, recipe = _applied("default", "balanced")
    assert spec == p.arch and recipe == Recipe.model_validate(p.recipe_dict)


@pytest.mark.parametrize("preset,amp", [("balanced", "fp16"), ("baseline", "off"), ("cbam", "off")])
def test_paper_sets_the_authors_split_augmentation_normalisation_and_precision(preset, amp):
    p, spec, recipe = _applied("paper", preset)
    assert (recipe.stratify, recipe.split_seed, tuple(recipe.split_ratios)) == (False, 42, (0.7, 0.15, 0.15))
    assert recipe.augment == "paper" and recipe.normalize == "imagenet" and recipe.amp == amp
    assert recipe.lr == p.recipe_dict["lr"] and recipe.epochs == p.recipe_dict["epochs"]  # the rest is the preset's
    assert spec.init == "paper"
    if p.arch.dropblock.type != "none" and "law" in type(spec.dropblock).model_fields:
        assert spec.dropblock.law == "paper"


def test_paper_as_run_is_paper_without_augmentation():
    _, spec_paper, paper = _applied("paper", "balanced")
    _, spec_run, run = _applied("paper-as-run", "balanced")
    assert run.augment == "none" and paper.augment == "paper"
    assert run.model_copy(update={"augment": "paper"}) == paper and spec_run == spec_paper


def test_an_architecture_of_another_name_keeps_its_precision():
    p = get_preset("baseline")
    spec = p.arch.model_copy(update={"name": "mine"})
    _, recipe = apply_protocol("paper", spec, {"amp": "bf16"})
    assert recipe["amp"] == "bf16" and recipe["augment"] == "paper"


def test_unknown_protocol_lists_the_allowed_ones():
    with pytest.raises(ConfigError) as e:
        apply_protocol("papper", get_preset("baseline").arch, {})
    assert all(name in str(e.value) for name in protocol_names())
    res = CliRunner().invoke(app, ["train", "--preset", "baseline", "--data", "eurosat-mini", "--protocol", "papper"])
    assert res.exit_code == 2 and "paper-as-run" in res.output and "Traceback" not in res.output


def test_train_applies_the_protocol_and_records_it(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "train", "--preset", "baseline", "--data", "eurosat-mini", "--protocol", "paper-as-run", "--epochs", "1",
        "--width-mult", "0.125", "--no-progress", "--out", str(out), "--set", "split_seed=7",
    ])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == "paper-as-run"
    assert m["n_train"] == 350 and m["n_val"] == 75 and m["n_test"] == 75  # int(0.7 n), int(0.15 n), rest
    recipe = Recipe.from_yaml((out / "recipe.yaml").read_text())
    assert (recipe.augment, recipe.normalize, recipe.stratify, recipe.amp) == ("none", "imagenet", False, "off")
    assert recipe.split_seed == 7  # --set still overrides the protocol
