"""The paper's presets match the author's published code: layers, parameters, FLOPs, structure."""

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from torch.nn import functional as F

from nasattn.blocks.dropblock import ScheduledDropBlock
from nasattn.blocks.fusion import LearnableAlpha
from nasattn.models import build_model, fusion_alphas, profile_model
from nasattn.presets import get_preset, list_presets

# The restated author's models below (virAditya/satellite-image-classification-eurosat) have these params and
# FLOPs (torch.utils.flop_counter, one 64x64 image); test_counts_match_author_code recounts them on both sides.
# layers/conv_layers: the paper's names for the nets; readme: the params the author's README states.
EXPECTED = {
    "baseline": dict(params=4_293_642, gflops=0.09, layers=3, conv_layers=3, readme=2.1e6),
    "cbam": dict(params=9_912_212, gflops=0.57, layers=7, conv_layers=13, readme=7.4e6),
    "balanced": dict(params=13_115_813, gflops=6.27, layers=12, conv_layers=23, readme=11.2e6),
}


def test_three_presets_are_listed():
    assert list_presets() == ["baseline", "cbam", "balanced"]  # the paper's order


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
    from nasattn.presets import load_arch_source
    from nasattn.schema import ENV_PRESETS

    _fourth_preset(tmp_path)
    assert "tiny" not in list_presets()
    monkeypatch.setenv(ENV_PRESETS, str(tmp_path))
    assert list_presets() == ["baseline", "cbam", "balanced", "tiny"]
    spec, recipe = load_arch_source(preset="tiny")
    assert spec.stages[2].width == 16 and recipe["optimizer"] == "adam"
    assert get_preset("tiny").paper["test_accuracy"] == get_preset("baseline").paper["test_accuracy"]


def test_a_fourth_preset_through_register_preset_dir(tmp_path, monkeypatch):
    from nasattn import presets

    monkeypatch.setattr(presets, "_registered", [])
    _fourth_preset(tmp_path)
    presets.register_preset_dir(tmp_path)
    assert set(list_presets()) == {"balanced", "baseline", "cbam", "tiny"}
    tiny = get_preset("tiny")  # the registered folder's file, not a built-in one
    assert Path(tiny.path) == tmp_path / "tiny.yaml" and tiny.name == "tiny"
    assert [s.width for s in tiny.arch.stages] == [32, 64, 16]  # the copy with its last width changed
    assert tiny.recipe_dict == get_preset("baseline").recipe_dict


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


# ----------------------------------------------------------------------------------- the author's models
# Restated here from the author's code (virAditya/satellite-image-classification-eurosat, models/
# baseline_3layer.py, attention_7layer.py, balanced_12layer.py): the same layers and forward passes, written
# as plain modules. Parameters are registered in the order nasattn registers its own (in each balanced block:
# convs, then alpha, coordinate attention, SE, then the shortcut), so that weights can be copied by order.
def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1, bias: bool = True) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias), nn.BatchNorm2d(cout)]


class _AuthorCBAM(nn.Module):
    """Channel (shared MLP on avg- and max-pooled, reduction 16) then spatial (7x7 on [mean, max]) gating."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(c, c // 16, bias=False), nn.ReLU(), nn.Linear(c // 16, c, bias=False))
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x):
        x = x * torch.sigmoid(self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3))))[:, :, None, None]
        return x * torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))


class _AuthorBaseline(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Sequential(*_cbr(a, b)) for a, b in ((3, 32), (32, 64), (64, 128)))
        self.fc1, self.fc2 = nn.Linear(128 * 8 * 8, 512), nn.Linear(512, 10)

    def forward(self, x):
        for c in self.convs:
            x = F.max_pool2d(F.relu(c(x)), 2)
        return self.fc2(F.dropout(self.fc1(x.flatten(1)), 0.5, self.training))


class _AuthorCBAMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        widths = [(3, 32), (32, 64), (64, 128), (128, 256), (256, 512), (512, 512)]
        self.blocks = nn.ModuleList(
            nn.ModuleList([nn.Sequential(*_cbr(a, b)), nn.Sequential(*_cbr(b, b))] + ([_AuthorCBAM(b)] if i else []))
            for i, (a, b) in enumerate(widths))
        self.conv7 = nn.Sequential(*_cbr(512, 512, k=1))
        self.fc1, self.fc2 = nn.Linear(512, 256), nn.Linear(256, 10)

    def forward(self, x):
        for conv_a, conv_b, *att in self.blocks:
            x = F.relu(conv_b(F.relu(conv_a(x))))
            x = F.max_pool2d(att[0](x) if att else x, 2)
        x = F.relu(self.conv7(x)).mean(dim=(2, 3))
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.4, self.training))


class _AuthorBalancedAttention(nn.Module):
    """s * coordinate attention (reduction 8) + (1 - s) * SE (reduction 16), s = sigmoid(alpha)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(0.5))
        r = c // 8
        self.coord_in = nn.Sequential(nn.Conv2d(c, r, 1, bias=False), nn.BatchNorm2d(r))
        self.coord_h, self.coord_w = nn.Conv2d(r, c, 1, bias=False), nn.Conv2d(r, c, 1, bias=False)
        self.se = nn.Sequential(nn.Linear(c, c // 16, bias=False), nn.ReLU(), nn.Linear(c // 16, c, bias=False))

    def forward(self, x):
        h = x.shape[2]
        y = F.relu(self.coord_in(torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], 2)))
        coord = x * torch.sigmoid(self.coord_h(y[:, :, :h])) * torch.sigmoid(self.coord_w(y[:, :, h:].transpose(2, 3)))
        se = x * torch.sigmoid(self.se(x.mean(dim=(2, 3))))[:, :, None, None]
        s = torch.sigmoid(self.alpha)
        return s * coord + (1 - s) * se


class _AuthorBalancedBlock(nn.Module):
    """relu(bn1(conv1)) -> (DropBlock, training only) -> bn2(conv2) -> attention -> + shortcut -> relu."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.a = nn.Sequential(*_cbr(cin, cout, stride=stride, bias=False))
        self.b = nn.Sequential(*_cbr(cout, cout, bias=False))
        self.attention = _AuthorBalancedAttention(cout)
        self.short = nn.Sequential(*_cbr(cin, cout, k=1, stride=stride, bias=False)) if stride > 1 or cin != cout else None

    def forward(self, x):
        out = self.attention(self.b(F.relu(self.a(x))))
        return F.relu(out + (self.short(x) if self.short is not None else x))


class _AuthorBalanced(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_cbr(3, 64, bias=False))
        plan = [(64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1),
                (128, 256, 2), (256, 256, 1), (256, 256, 1), (256, 512, 2), (512, 512, 1)]
        self.blocks = nn.Sequential(*(_AuthorBalancedBlock(*p) for p in plan))
        self.fc = nn.Linear(512, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x))).mean(dim=(2, 3))
        return self.fc(F.dropout(x, 0.5, self.training))


AUTHOR = {"baseline": _AuthorBaseline, "cbam": _AuthorCBAMNet, "balanced": _AuthorBalanced}


def _randomised(model: nn.Module) -> nn.Module:
    """Every weight, bias and BN statistic drawn at random, so that a copied weight in the wrong place shows."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                fan = t[0].numel() if t.dim() > 1 else 1
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=g) / fan ** 0.5)
    return model


@pytest.mark.parametrize("name", list(EXPECTED))
def test_presets_compute_the_authors_models(name):
    """The author's model with random weights, copied into the preset's model: the same logits in eval mode."""
    author = _randomised(AUTHOR[name]()).eval()
    ours = build_model(get_preset(name).arch).eval()
    src = [t for k, t in author.state_dict().items() if "num_batches" not in k]
    dst = {k: t for k, t in ours.state_dict().items() if "num_batches" not in k}
    assert [t.numel() for t in src] == [t.numel() for t in dst.values()]
    ours.load_state_dict({k: s.reshape(t.shape) for (k, t), s in zip(dst.items(), src)}, strict=False)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = author(x), ours(x)
    assert want.std() > 0.1  # the comparison is not of two near-zero outputs
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_counts_match_author_code(name):
    """Parameters and FLOPs (torch.utils.flop_counter, one 64x64 image) equal those of the restated author's
    model; layers/conv_layers are the paper's names for the nets (3, 7, 12 layers); readme_params are the
    author's README figures, which differ from the code's counts and are kept to show it."""
    exp = EXPECTED[name]
    preset = get_preset(name)
    profile = profile_model(build_model(preset.arch))
    author = profile_model(AUTHOR[name]())
    assert (profile["params"], profile["flops"]) == (author["params"], author["flops"])
    assert profile["params"] == exp["params"] and round(profile["flops"] / 1e9, 2) == exp["gflops"]
    assert (profile["layers"], profile["conv_layers"]) == (exp["layers"], exp["conv_layers"])
    assert preset.paper["readme_params"] == exp["readme"]


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
