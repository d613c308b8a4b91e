"""Training-free scores (nasattn.engine.zero_cost) on tiny nets whose scores follow by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nasattn.engine.zero_cost import gradnorm_score, naswot_score, score_batch, synflow_score, zero_cost_scores


def _identity_relu() -> nn.Module:
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(2))
        lin.bias.zero_()
    return nn.Sequential(lin, nn.ReLU())


def test_naswot_is_the_log_determinant_of_the_hamming_kernel():
    # codes: (1, 1) -> [1, 1]; (1, -1) -> [1, 0]; (-1, -1) -> [0, 0]
    # K[i, j] = units where codes agree: [[2, 1, 0], [1, 2, 1], [0, 1, 2]], det = 4
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert naswot_score(_identity_relu(), x) == pytest.approx(math.log(4.0))
    assert naswot_score(_identity_relu(), x[:2]) == pytest.approx(math.log(3.0))


def test_naswot_of_identical_inputs_is_minus_infinity_and_finite_for_distinct_images():
    from nasattn.models import build_model
    from nasattn.presets import get_preset

    torch.manual_seed(0)
    model = build_model(get_preset("cbam").arch.scaled(0.125))
    x = torch.randn(8, 3, 64, 64)
    assert math.isfinite(naswot_score(model, x))
    assert naswot_score(model, x[:1].expand(8, -1, -1, -1).contiguous()) == -math.inf


def test_gradnorm_of_a_zero_linear_layer_matches_the_closed_form_and_scales_with_the_input():
    # W = 0, b = 0: p is uniform, dL/db = p - e_y, dL/dW = (p - e_y) x^T, so the score is |p - e_y| (|x| + 1)
    k = 4
    lin = nn.Linear(3, k)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    x, y = torch.tensor([[3.0, 0.0, 4.0]]), torch.tensor([2])
    g = math.sqrt((1 - 1 / k) ** 2 + (k - 1) / k**2)
    assert gradnorm_score(lin, x, y) == pytest.approx(g * (5 + 1), rel=1e-6)
    assert gradnorm_score(lin, 2 * x, y) == pytest.approx(g * (10 + 1), rel=1e-6)


def test_synflow_of_a_bias_free_two_layer_net_is_twice_its_output():
    # With |weights| and a ones input, R = 1^T |W2| |W1| 1 is linear in each layer, so the sum of
    # theta * dR/dtheta over one layer's weights is R (Euler): two layers give 2R.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7, bias=False), nn.ReLU(), nn.Linear(7, 3, bias=False))
    with torch.no_grad():
        r = float(net[2].weight.abs().double().sum(0) @ net[0].weight.abs().double() @ torch.ones(5, dtype=torch.float64))
    assert synflow_score(net, (5,)) == pytest.approx(2 * r, rel=1e-9)
    assert (net[0].weight < 0).any()  # the model's own signs are untouched


def test_scores_leave_the_model_and_the_random_stream_untouched():
    from nasattn.models import build_model
    from nasattn.presets import get_preset

    torch.manual_seed(1)
    model = build_model(get_preset("balanced").arch.scaled(0.0625))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randint(0, 256, (40, 3, 64, 64), dtype=torch.uint8)
    labels = torch.arange(40) % 10
    x, y = score_batch(images, labels, size=16)
    assert x.shape == (16, 3, 64, 64) and y.tolist() == labels[torch.linspace(0, 39, 16).round().long()].tolist()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    scores = zero_cost_scores(model, x, y)
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert set(scores) == {"zc_naswot", "zc_synflow", "zc_gradnorm"}
    assert all(math.isfinite(v) and v > 0 for v in scores.values())
