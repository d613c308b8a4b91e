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
