"""``init: paper`` gives the author's initialisation to every layer the author initialises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasattn.models import build_model
from nasattn.presets import get_preset


def _ses(model: nn.Module) -> list[nn.Module]:
    from nasattn.blocks.se_torchvision import SE

    return [m for m in model.modules() if isinstance(m, SE)]


def test_paper_init_gives_se_layers_the_authors_normal_0_01():
    torch.manual_seed(0)
    model = build_model(get_preset("balanced").arch.scaled(0.5))
    ses = _ses(model)
    assert len(ses) == 11
    weights = torch.cat([fc.weight.detach().flatten() for se in ses for fc in (se.fc1, se.fc2)])
    assert float(weights.std()) == pytest.approx(0.01, rel=0.03)
    assert abs(float(weights.mean())) < 5e-4
    x = torch.randn(4, ses[0].fc2.out_channels, 8, 8)
    with torch.no_grad():
        gate = ses[0].scale_activation(ses[0].fc2(ses[0].activation(ses[0].fc1(ses[0].avgpool(x)))))
    assert float((gate - 0.5).abs().max()) < 0.01  # gates start near 0.5


def test_torch_init_keeps_torch_defaults_for_se():
    torch.manual_seed(0)
    spec = get_preset("balanced").arch.scaled(0.5).model_copy(update={"init": "torch"})
    weights = torch.cat([se.fc1.weight.detach().flatten() for se in _ses(build_model(spec))])
    assert float(weights.std()) > 0.03  # torch's default for a 1x1 conv, far from the author's 0.01


def test_paper_init_of_the_other_layers():
    torch.manual_seed(0)
    model = build_model(get_preset("cbam").arch.scaled(0.5))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]  # CBAM MLPs and the head
    assert linears and all(float(m.weight.std()) == pytest.approx(0.01, rel=0.3) for m in linears if m.weight.numel() > 500)
    assert all(m.bias is None or not m.bias.any() for m in linears)
    conv = model.stages[3][0][0]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert float(conv.weight.std()) == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)  # Kaiming, fan_out
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in bns)
