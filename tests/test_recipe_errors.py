"""Recipe errors list every problem; an unknown field lists the recipe's fields (also for train's --set)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from nasattn.cli.main import app
from nasattn.config import ConfigError
from nasattn.recipe import Recipe, check_recipe_fields


def test_from_dict_lists_every_problem_and_the_allowed_fields():
    with pytest.raises(ConfigError) as e:
        Recipe.from_dict({"foo": 1, "lr": -1, "no_weight_decay": ["alpha"]}, "my.yaml")
    lines = str(e.value).splitlines()
    assert len(lines) == 3 and all(line.startswith("my.yaml: ") for line in lines)
    assert any(line.startswith("my.yaml: lr: ") for line in lines)
    assert any("no_weight_decay" in line and "'fusion', 'norm' or 'bias'" in line for line in lines)
    unknown = next(line for line in lines if line.startswith("my.yaml: foo: "))
    assert set(unknown.split("allowed: ")[1].split(", ")) == set(Recipe.model_fields)


def test_check_recipe_fields_lists_every_problem():
    with pytest.raises(ValueError) as e:
        check_recipe_fields({"epochs": 3, "lr": -1, "foo": 1}, epochs_elsewhere="budget.epochs")
    msg = str(e.value)
    assert "epochs: set the epochs in budget.epochs" in msg and "lr: " in msg and "foo: unknown field; allowed:" in msg


def test_train_set_unknown_field_lists_recipe_fields():
    r = CliRunner().invoke(app, ["train", "--preset", "baseline", "--data", "eurosat-mini", "--set", "foo=1",
                                 "--set", "lr=-1"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    out = " ".join(r.output.split())
    assert "foo: unknown field; allowed: epochs," in out and "weight_decay" in out and "lr: " in out
    assert "study" not in out and "budget" not in out
