"""The paper's presets match the author's published code: layers, parameters, FLOPs, structure."""

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from nasattn.blocks.dropblock import ScheduledDropBlock
from nasattn.blocks.fusion import LearnableAlpha
from nasattn.models import build_model, fusion_alphas, profile_model
from nasattn.presets import get_preset, list_presets

# Counted from a faithful restatement of the author's code (virAditya/satellite-image-classification-eurosat):
# params exactly; FLOPs with torch.utils.flop_counter for one 64x64 image.
EXPECTED = {
    "baseline": dict(params=4_293_642, gflops=0.09, layers=3, conv_layers=3, readme=2.1e6),
    "cbam": dict(params=9_912_212, gflops=0.57, layers=7, conv_layers=13, readme=7.4e6),
    "balanced": dict(params=13_115_813, gflops=6.27, layers=12, conv_layers=23, readme=11.2e6),
}


def test_three_presets_are_listed():
    assert list_presets() == ["balanced", "baseline", "cbam"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_stored_profile_equals_the_built_model(name):
    """``nasattn presets`` prints the YAML's profile without building: it must equal the model's."""
    preset = get_preset(name)
    torch.manual_seed(0)
    assert preset.profile == profile_model(build_model(preset.arch))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_preset_files_state_nasattns_choices(name):
    preset = get_preset(name)
    assert "early_stopping" in preset.choices and "precision" in preset.choices
    assert isinstance(preset.differences, list)
    if name != "balanced":  # the author's configs name no optimizer for these two
        assert preset.recipe_dict["optimizer"] in preset.choices["optimizer"]


def test_balanced_paper_protocol_selects_the_authors_dropblock_law_and_fp16():
    preset = get_preset("balanced")
    assert preset.paper_protocol == {"arch": {"dropblock": {"law": "paper"}}, "recipe": {"amp": "fp16"}}
    assert preset.arch.dropblock.law == "torchvision"  # the default protocol keeps torchvision's law
    assert preset.arch.with_dropblock_law(preset.paper_protocol["arch"]["dropblock"]["law"]).dropblock.law == "paper"


def _fourth_preset(folder):
    text = (Path(get_preset("baseline").path).read_text()
            .replace("name: baseline", "name: tiny").replace("width: 128", "width: 16"))
    (folder / "tiny.yaml").write_text(text)


def test_a_fourth_preset_is_one_yaml_file_in_a_folder_named_by_the_env_var(tmp_path, monkeypatch):
    from nasattn.presets import ENV_VAR, load_arch_source

    _fourth_preset(tmp_path)
    assert "tiny" not in list_presets()
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert list_presets() == ["balanced", "baseline", "cbam", "tiny"]
    spec, recipe = load_arch_source(preset="tiny")
    assert spec.stages[2].width == 16 and recipe["optimizer"] == "adam"
    assert get_preset("tiny").paper["test_accuracy"] == get_preset("baseline").paper["test_accuracy"]


def test_a_fourth_preset_through_register_preset_dir(tmp_path, monkeypatch):
    from nasattn import presets

    monkeypatch.setattr(presets, "_registered", [])
    _fourth_preset(tmp_path)
    presets.register_preset_dir(tmp_path)
    assert "tiny" in list_presets() and "tiny" in presets.PRESET_NAMES


def test_load_arch_source_reads_presets_specs_and_preset_style_files(tmp_path):
    from nasattn.config import ConfigError
    from nasattn.presets import load_arch_source

    spec, recipe = load_arch_source(preset="cbam")
    assert spec == get_preset("cbam").arch and recipe == get_preset("cbam").recipe_dict
    bare = tmp_path / "bare.yaml"
    bare.write_text(spec.to_yaml())
    assert load_arch_source(path=bare) == (spec, {})
    styled = tmp_path / "styled.yaml"
    styled.write_text(yaml.safe_dump({"arch": spec.to_dict(), "recipe": {"lr": 0.01}}))
    assert load_arch_source(path=styled) == (spec, {"lr": 0.01})
    with pytest.raises(ConfigError, match="unknown preset 'nope'; allowed: balanced, baseline, cbam"):
        load_arch_source(preset="nope")
    with pytest.raises(ConfigError, match="exactly one"):
        load_arch_source()
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="list.yaml: an architecture file must be a mapping"):
        load_arch_source(path=tmp_path / "list.yaml")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_counts_match_author_code(name):
    exp = EXPECTED[name]
    preset = get_preset(name)
    torch.manual_seed(0)
    profile = profile_model(build_model(preset.arch))
    assert profile["params"] == exp["params"]
    assert round(profile["flops"] / 1e9, 2) == exp["gflops"]
    assert (profile["layers"], profile["conv_layers"]) == (exp["layers"], exp["conv_layers"])
    assert preset.paper["readme_params"] == exp["readme"]  # the README's numbers, kept to show the discrepancy


def test_baseline_layer_for_layer():
    model = build_model(get_preset("baseline").arch)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.bias is not None) for c in convs] == [
        (3, 32, (3, 3), True), (32, 64, (3, 3), True), (64, 128, (3, 3), True)]
    linears = [m for m in model.head if isinstance(m, (nn.Linear, nn.Dropout, nn.ReLU))]
    assert [type(m) for m in linears] == [nn.Linear, nn.Dropout, nn.Linear]  # no activation, as the author's
    assert linears[0].in_features == 128 * 8 * 8 and linears[0].out_features == 512
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3


def test_cbam_layer_for_layer():
    from nasattn.blocks.cbam import CBAM

    model = build_model(get_preset("cbam").arch)
    widths = [s[0][0].out_channels for s in model.stages]
    assert widths == [32, 64, 128, 256, 512, 512]
    has_cbam = [any(isinstance(m, CBAM) for m in s.modules()) for s in model.stages]
    assert has_cbam == [False, True, True, True, True, True]
    cbam = next(m for m in model.modules() if isinstance(m, CBAM))
    assert cbam.spatial.conv.kernel_size == (7, 7) and cbam.channel.mlp[0].out_features == 64 // 16
    assert isinstance(model.head[0], nn.Conv2d) and model.head[0].kernel_size == (1, 1)
    assert model.head[-1].in_features == 256 and model.head[-2].p == 0.4


def test_balanced_layer_for_layer():
    model = build_model(get_preset("balanced").arch)
    assert [len(s) for s in model.stages] == [3, 3, 3, 2]
    first = [s[0] for s in model.stages]
    assert [b.conv1.stride for b in first] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert [isinstance(b.shortcut, nn.Identity) for b in first] == [True, False, False, False]
    drops = [m for m in model.modules() if isinstance(m, ScheduledDropBlock)]
    assert len(drops) == 11 and all(d.block_size == 7 for d in drops)
    assert sorted({round(d.target_p, 2) for d in drops}) == [0.05, 0.1, 0.15, 0.2]
    fusions = [m for m in model.modules() if isinstance(m, LearnableAlpha)]
    assert len(fusions) == 11 and all(float(f.alpha.detach()) == 0.5 for f in fusions)
    assert fusions[0].spatial.conv1.out_channels == 64 // 8 and fusions[0].channel.fc1.out_channels == 64 // 16
    assert len(fusion_alphas(model)) == 11
    assert isinstance(model.head[-1], nn.Linear) and model.head[-1].in_features == 512
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_recipes_validate(name):
    recipe = get_preset(name).recipe
    assert recipe.batch_size == 64 and recipe.lr == 1e-3


def test_balanced_recipe_is_the_authors():
    r = get_preset("balanced").recipe
    assert (r.optimizer, r.weight_decay, r.schedule, r.t0, r.t_mult, r.epochs, r.early_stopping_patience) == (
        "adamw", 0.05, "warm_restarts", 15, 2, 80, 15)
    assert r.class_weights == [1.0, 0.8, 1.3, 1.0, 1.3, 1.0, 1.3, 0.8, 1.0, 0.8]
