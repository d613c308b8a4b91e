"""A block parameter's type is checked by one rule, in an arch file and in a search space alike."""

import pytest

from nasattn.config import ConfigError
from nasattn.search.space import load_space
from nasattn.spec import ArchSpec


@pytest.mark.parametrize("value, wrong", [(True, "a number"), ("four", "a number"), (2.5, "an integer")])
def test_arch_and_space_reject_the_same_reduction(value, wrong):
    with pytest.raises(ConfigError) as arch:
        ArchSpec.from_dict({"stages": [{"width": 8, "attention": {"type": "se", "reduction": value}}]}, "arch.yaml")
    assert f"must be {wrong}" in str(arch.value)
    with pytest.raises(ConfigError) as space:
        load_space({"attention": {"type": {"options": {"se": {"reduction": {"choice": [8, value]}}}}}})
    assert f"must be {wrong}" in str(space.value) and "attention.type" in str(space.value)


def test_integral_float_and_int_for_float_are_accepted():
    spec = ArchSpec.from_dict({"stages": [{"width": 8, "attention": {"type": "se", "reduction": 4.0}}]})
    assert spec.stages[0].attention.params["reduction"] == 4.0
    load_space({"attention": {"type": {"options": {"se": {"reduction": {"choice": [4.0, 8]}}}}}})
