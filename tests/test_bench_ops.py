"""aten ops per training step: counted through the engine, setup cancelled, growing with the network."""

from __future__ import annotations

import torch

from nasattn.bench.ops import OpCounter, ops_per_step
from nasattn.recipe import Recipe
from nasattn.models import build_model
from nasattn.presets import get_preset
from nasattn.spec import ArchSpec
from tests.test_engine import DATA, FAST


def test_counter_counts_each_dispatched_op():
    with OpCounter() as c:
        x = torch.ones(3)
        (x + 1).mul_(2).sum()
    assert c.by_op.get("add") == 1 and c.by_op.get("mul_") == 1 and c.by_op.get("sum") == 1


def _spec() -> ArchSpec:
    arch = get_preset("baseline").arch.scaled(0.125)
    return arch.model_copy(update={"num_classes": 4, "input_size": 16})


def test_ops_per_step_is_independent_of_setup_and_counts_every_step():
    recipe = Recipe(**{**FAST, "batch_size": 16, "amp": "off"})
    spec = _spec()
    a = ops_per_step(spec, recipe, DATA, base=1, extra=1)
    b = ops_per_step(spec, recipe, DATA, base=2, extra=2)
    assert a["ops_per_step"] == b["ops_per_step"] > 50
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in build_model(spec).modules())
    assert a["by_op"]["convolution"] == convs and a["by_op"]["convolution_backward"] == convs, a["by_op"]
