"""Every config file reports a bad field the same way (nasattn.config.format_validation_error)."""

import pytest

from nasattn.ablation.study import load_ablation
from nasattn.config import ConfigError
from nasattn.recipe import Recipe
from nasattn.search.space import load_space
from nasattn.search.study import load_study
from nasattn.tune.resources import Resources


def _error(fn, *args):
    with pytest.raises(ConfigError) as e:
        fn(*args)
    return str(e.value)


def _file(tmp_path, text):
    path = tmp_path / "f.yaml"
    path.write_text(text)
    return path


def test_a_literal_names_the_allowed_values_in_every_file(tmp_path):
    study = _error(load_study, _file(tmp_path, "space: {stages: {count: 3}}\nsampler: {type: annealing}\n"))
    assert study.endswith("f.yaml: sampler.type: 'annealing' is not allowed; allowed: 'tpe', 'random', 'cmaes', 'nsga2', 'gp' or 'grid'")
    ablation = _error(load_ablation, _file(tmp_path, "correction: bonferroni\n"))
    assert ablation.endswith("f.yaml: correction: 'bonferroni' is not allowed; allowed: 'holm', 'bh' or 'none'")
    space = _error(load_space, {"attention": {"mode": "sometimes"}})
    assert "attention.mode" in space and "'sometimes'" in space


def test_an_unknown_field_lists_the_fields_of_the_model_that_holds_it(tmp_path):
    recipe = _error(Recipe.from_dict, {"optimiser": "adam"}, "r.yaml")
    assert recipe.startswith("r.yaml: optimiser: unknown field; allowed: ") and "optimizer" in recipe
    nested = _error(load_ablation, _file(tmp_path, "resources: {cpus: 2}\n"))
    assert nested.endswith(f"f.yaml: resources.cpus: unknown field; allowed: {', '.join(Resources.model_fields)}")


def test_a_problem_appears_once():
    msg = _error(Recipe.from_dict, {"lr": -1.0, "optimiser": "adam"}, "r.yaml")
    lines = msg.split("\n")
    assert len(lines) == len(set(lines)) == 2
