"""Presets as full points of a search (issue 13, part 4) and the rediscovery study (issue 16, part 2)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from nasattn.config import ConfigError
from nasattn.presets import get_preset
from nasattn.search.searcher import TrialConfigFactory
from nasattn.search.space import build_arch_dict, canonical_arch, load_space, preset_points, sample_recipe
from nasattn.search.study import load_study
from nasattn.spec import ArchSpec

ROOT = Path(__file__).resolve().parents[1]
REDISCOVER = ROOT / "search_spaces" / "rediscover.yaml"
PAPER_WEIGHTS = [1.0, 0.8, 1.3, 1.0, 1.3, 1.0, 1.3, 0.8, 1.0, 0.8]


@pytest.mark.parametrize("name", ["baseline", "cbam", "balanced"])
def test_every_preset_is_a_full_point_of_the_rediscovery_space(name):
    space = load_space(REDISCOVER)
    point = preset_points(space, [name])[name]
    trial = optuna.trial.FixedTrial(point)
    assert canonical_arch(ArchSpec.from_dict(build_arch_dict(space, trial))) == canonical_arch(get_preset(name).arch)
    recipe = sample_recipe(space, optuna.trial.FixedTrial(point))
    assert recipe["class_weights"] == get_preset(name).recipe.class_weights  # the loss weights too


def test_the_paper_class_weights_are_a_named_choice_that_samples_the_authors_list():
    space = load_space(REDISCOVER)
    assert preset_points(space, ["balanced"])["balanced"]["recipe.class_weights"] == "paper"
    assert preset_points(space, ["baseline"])["baseline"]["recipe.class_weights"] == "none"
    assert sample_recipe(space, optuna.trial.FixedTrial({"recipe.class_weights": "paper"}))["class_weights"] == PAPER_WEIGHTS


def test_the_paper_class_weights_are_rejected_outside_ten_class_spaces():
    raw = yaml.safe_load(REDISCOVER.read_text())
    raw["num_classes"] = 5
    with pytest.raises(ConfigError, match=r"recipe\.class_weights: 'paper' is the paper's hand-set weights .* num_classes 5"):
        load_space(raw, "five.yaml")
    raw["recipe"] = {"class_weights": {"choice": ["none", "balanced"]}}
    load_space(raw, "five.yaml")  # without 'paper' the 5-class space is fine
    raw["own_recipes"] = {"balanced": {"lr": 1.0}}
    with pytest.raises(ConfigError, match="own_recipes"):
        load_space(raw, "five.yaml")


def _first_config(path: Path, recipe_mode: str) -> dict:
    """The trial config the searcher builds for the balanced preset's seed trial."""
    raw = yaml.safe_load(path.read_text())
    raw["seeds"] = {"presets": ["balanced"], "recipe": recipe_mode}
    study_file = path.parent / f"study-{recipe_mode}.yaml"
    study_file.write_text(yaml.safe_dump(raw))
    loaded = load_study(study_file)
    factory = TrialConfigFactory(loaded.space, {}, dict(loaded.study.train.recipe), loaded.study.budget.epochs)
    st = optuna.create_study(direction="maximize")
    st.enqueue_trial(preset_points(loaded.space, ["balanced"])["balanced"], user_attrs={"seed_point": "balanced"})
    return factory(st.ask())


def test_seed_trials_train_with_their_own_recipe_or_the_studys(tmp_path):
    study = yaml.safe_load((ROOT / "studies" / "rediscover-cpu.yaml").read_text())
    study["space"] = str(REDISCOVER)
    path = tmp_path / "rediscover.yaml"
    path.write_text(yaml.safe_dump(study))
    own = _first_config(path, "own")
    preset = get_preset("balanced").recipe_dict
    assert own["optuna"]["seed_recipe"] == "own"
    for key in ("optimizer", "lr", "weight_decay", "schedule", "t0", "class_weights"):
        assert own["recipe"][key] == preset[key], key
    assert own["recipe"]["epochs"] == study["budget"]["epochs"]  # the budget stays the study's
    same = _first_config(path, "study")
    assert same["optuna"]["seed_recipe"] == "study"
    assert same["recipe"]["schedule"] == "cosine" and same["recipe"]["weight_decay"] == 0.0001
    assert same["recipe"]["class_weights"] == PAPER_WEIGHTS  # still the preset's point of the space


@pytest.mark.parametrize("name", ["rediscover-cpu", "rediscover"])
def test_the_rediscovery_studies_validate_with_presets_first_own_recipes_and_asha(name):
    loaded = load_study(ROOT / "studies" / f"{name}.yaml")
    s = loaded.study
    assert s.seeds.presets == ["baseline", "cbam", "balanced"] and s.seeds.recipe == "own"
    assert s.early_stopping.type == "asha" and s.space == "../search_spaces/rediscover.yaml"
    assert set(loaded.space.own_recipes) == {"baseline", "cbam", "balanced"}
    if name == "rediscover-cpu":
        assert s.train.width_mult == 0.125 and s.budget.time_limit <= 2 * 3600 and s.resources.max_concurrent == 2
