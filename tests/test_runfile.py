"""Study and ablation files share one definition of their common fields (nasattn.runfile.RunFile)."""

import pytest

from nasattn.ablation.study import load_ablation
from nasattn.config import ConfigError
from nasattn.runfile import RunFile
from nasattn.search.study import load_study
from nasattn.tune.resources import RayConfig, Resources


def _load(kind, tmp_path, text, output="out"):
    path = tmp_path / f"{kind}.yaml"
    if kind == "study":
        path.write_text("space: {stages: {count: 3}}\n" + text)
        return load_study(path, output=tmp_path / output if output else None)
    path.write_text(text)
    return load_ablation(path)


@pytest.mark.parametrize("kind", ["study", "ablation"])
@pytest.mark.parametrize("text, message", [
    ("resources: {cpus_per_trial: 0}\n", "resources.cpus_per_trial: Input should be greater than 0"),
    ("subset: 1.5\n", "subset: Input should be less than or equal to 1"),
    ("ray: {adress: auto}\n", "ray.adress: unknown field"),
])
def test_shared_fields_are_checked_alike(kind, tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        _load(kind, tmp_path, text)
    assert message in str(e.value)


def _field(info):
    return info.annotation, info.default, info.default_factory, info.metadata


@pytest.mark.parametrize("kind, name, output", [("study", "search", "runs/search"), ("ablation", "ablation", "runs/ablation")])
def test_each_file_keeps_its_own_defaults(kind, tmp_path, monkeypatch, name, output):
    monkeypatch.chdir(tmp_path)
    loaded = _load(kind, tmp_path, "subset: 0.5\n", output=None)
    model = loaded.study if kind == "study" else loaded.ablation
    assert isinstance(model, RunFile)
    shared = {f: _field(i) for f, i in RunFile.model_fields.items() if f not in ("name", "output")}
    assert {f: _field(i) for f, i in type(model).model_fields.items() if f in shared} == shared  # one definition
    assert (model.name, model.subset, model.report) == (name, 0.5, True)
    assert (model.resources, model.ray) == (Resources(), RayConfig())
    assert loaded.output == (tmp_path / output).resolve()  # its own default folder, under the working directory
