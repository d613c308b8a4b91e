"""ArchSpec validation, YAML round-trips, determinism of the builder, width scaling."""

import pytest
import torch

from nasattn.config import ConfigError, load_model
from nasattn.models import build_model
from nasattn.presets import get_preset
from nasattn.spec import ArchSpec


def _error(data) -> str:
    with pytest.raises(ConfigError) as e:
        ArchSpec.from_dict(data, "arch.yaml")
    return str(e.value)


@pytest.mark.parametrize("name", ["baseline", "cbam", "balanced"])
def test_yaml_round_trip_is_unchanged(name):
    spec = get_preset(name).arch
    again = ArchSpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert again.to_yaml() == spec.to_yaml()
    assert ArchSpec.model_validate_json(spec.to_json()) == spec


def test_same_spec_same_seed_same_weights():
    spec = get_preset("balanced").arch.scaled(0.125)
    weights = []
    for _ in range(2):
        torch.manual_seed(7)
        weights.append(build_model(spec).state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_unknown_attention_names_field_and_allowed():
    msg = _error({"stages": [{"width": 8}, {"width": 8, "attention": {"type": "cbm"}}]})
    assert msg.startswith("arch.yaml: stages[1].attention:")
    assert "unknown attention block 'cbm'" in msg and "cbam" in msg and "coord" in msg


def test_unknown_parameter_and_wrong_type():
    msg = _error({"stages": [{"width": 8, "attention": {"type": "se", "ratio": 4}}]})
    assert "stages[0].attention" in msg and "unknown parameter 'ratio'" in msg and "reduction" in msg
    msg = _error({"stages": [{"width": 8, "attention": {"type": "se", "reduction": "four"}}]})
    assert "must be a number" in msg


def test_unknown_fusion_strategy_and_branch():
    msg = _error({"stages": [{"width": 8, "attention": {"type": "fusion", "strategy": "avg"}}]})
    assert "stages[0].attention" in msg and "unknown fusion block 'avg'" in msg and "learnable_alpha" in msg
    msg = _error({"stages": [{"width": 8, "attention": {"type": "fusion", "spatial": {"type": "xx"}}}]})
    assert "unknown attention block 'xx'" in msg


def test_impossible_values():
    assert "stages[0].width" in _error({"stages": [{"width": 0}]})
    assert "stages" in _error({"stages": []})
    assert "num_classes" in _error({"num_classes": 1, "stages": [{"width": 8}]})
    msg = _error({"input_size": 8, "stages": [{"width": 8, "downsample": "maxpool"}] * 5})
    assert "stages[3]" in msg and "impossible" in msg
    msg = _error({"stages": [{"width": 8}], "dropblock": {"schedule": "constant", "p": 1.5}})
    assert "dropblock" in msg and "[0, 1)" in msg
    assert "unknown field" in _error({"stages": [{"width": 8, "widht": 3}]})
    assert "stages[0].block" in _error({"stages": [{"width": 8, "block": "bottleneck"}]})


def test_errors_from_a_file_name_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("stages: [{width: 8, attention: {type: nope}}]\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: stages\[0\].attention: unknown attention block 'nope'"):
        load_model(ArchSpec, path)
    path.write_text("stages: [width: 8\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: invalid YAML \(line"):
        load_model(ArchSpec, path)


def test_width_scaling():
    spec = get_preset("balanced").arch
    quarter = spec.scaled(0.25)
    assert quarter.stem.width == 16
    assert [s.width for s in quarter.stages] == [16, 32, 64, 128]
    assert spec.scaled(1.0) == spec
    cbam = get_preset("cbam").arch.scaled(0.5)
    assert cbam.head.params["conv_width"] == 256 and cbam.head.params["hidden"] == 128
    with pytest.raises(ConfigError):
        spec.scaled(0)


def test_building_touches_no_batchnorm_statistics_and_allows_a_1x1_map():
    import torch

    from nasattn.models import build_model

    stages = [{"block": "residual", "depth": 1, "width": w, "downsample": "stride", "attention": {"type": "coord"}}
              for w in (8, 16, 16, 16, 16, 16)]  # 64 -> 1 pixel
    model = build_model(ArchSpec.from_dict({"stages": stages, "head": {"type": "flatten_mlp", "hidden": 32}}))
    assert model.training
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        assert int(bn.num_batches_tracked) == 0 and torch.all(bn.running_var == 1)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


@pytest.mark.parametrize("where,value,words", [
    ("se", {"type": "se", "reduction": 0}, "stages[0].attention: attention 'se' parameter 'reduction' must be >= 1, got 0"),
    ("fusion", {"type": "fusion", "channel": {"type": "se", "reduction": 0}}, "parameter 'reduction' must be >= 1, got 0"),
    ("dropout", {"type": "gap_linear", "dropout": 1.5}, "head: head 'gap_linear' parameter 'dropout' must be in [0, 1), got 1.5"),
    ("hidden", {"type": "flatten_mlp", "hidden": -5}, "head: head 'flatten_mlp' parameter 'hidden' must be >= 1, got -5"),
])
def test_out_of_range_block_parameters_are_rejected_with_the_field(where, value, words):
    data = {"stages": [{"width": 16}]}
    if where in ("se", "fusion"):
        data["stages"][0]["attention"] = value
    else:
        data["head"] = value
    assert words in _error(data)


def test_width_scaling_never_makes_an_invalid_value_valid():
    spec = ArchSpec.from_dict({"stages": [{"width": 16}], "head": {"type": "flatten_mlp", "hidden": 64}})
    broken = spec.model_copy(update={"head": spec.head.model_copy(update={"hidden": -5})})  # unvalidated copy
    for mult in (0.25, 1.0, 2.0):
        with pytest.raises(ConfigError, match="'hidden' must be >= 1, got -5"):
            broken.scaled(mult)
    gap = ArchSpec.from_dict({"stages": [{"width": 16}], "head": {"type": "gap_linear", "conv_width": 0}})
    assert gap.scaled(0.25).head.params["conv_width"] == 0  # 0 (no 1x1 conv) stays 0


def test_user_conv_block_without_num_convs_counts_as_one_conv():
    from torch import nn

    from nasattn.registry import register_block
    from nasattn.spec import DEFAULT_NUM_CONVS

    @register_block("conv", "test_no_num_convs")
    class Bare(nn.Module):
        """A user conv block that does not declare num_convs."""

        def __init__(self, in_channels, out_channels, stride=1, attention=None, drop_prob=0.0, block_size=7):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1)

        def forward(self, x):
            return self.conv(x)

    spec = ArchSpec.from_dict({"stem": {"type": "conv", "width": 8},
                               "stages": [{"block": "test_no_num_convs", "depth": 3, "width": 8},
                                          {"block": "double", "depth": 2, "width": 8}]})
    assert spec.conv_layers == 1 + 3 * DEFAULT_NUM_CONVS + 2 * 2
