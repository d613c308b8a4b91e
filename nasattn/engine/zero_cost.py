"""Training-free scores of a network at initialisation, computed on one batch.

- ``naswot``: Mellor et al. 2021 ("Neural Architecture Search without Training"): every ReLU gives
  each image a binary code (which units are active); ``K[i, j]`` counts the units where images i
  and j agree, summed over all ReLUs; the score is ``log|det K|`` (-inf when two images share
  every code, e.g. identical inputs).
- ``synflow``: Tanaka et al. 2020 as a NAS proxy (Abdelfattah et al. 2021): with every weight
  replaced by its absolute value, in float64 and eval mode, the sum over parameters of
  ``|theta * dR/dtheta|`` where ``R`` is the sum of the outputs for an all-ones input.
- ``gradnorm``: Abdelfattah et al. 2021: the sum over parameters of the L2 norm of the gradient of
  the cross-entropy loss on the batch.

Every score is computed on a deep copy, inside a forked RNG, so the model and the random stream of
the training that follows are untouched.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

ZC_COLUMNS = ("zc_naswot", "zc_synflow", "zc_gradnorm")


def naswot_score(model: nn.Module, x: torch.Tensor) -> float:
    """``log|det K|`` of the ReLU activation-pattern kernel of the batch ``x`` (train mode, no grad)."""
    net = copy.deepcopy(model).train()
    n = x.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.device)

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        codes = (output.detach().reshape(n, -1) > 0).to(torch.float64)
        kernel.add_(codes @ codes.T).add_((1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    if not handles:
        raise ValueError("naswot needs at least one nn.ReLU module in the network")
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) != 0 else -math.inf


def synflow_score(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Sum of ``|theta * dR/dtheta|`` with |weights|, float64, eval mode and an all-ones input."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    device = next(net.parameters()).device
    net.zero_grad(set_to_none=True)
    with torch.random.fork_rng(devices=[]):
        out = net(torch.ones(1, *input_shape, dtype=torch.float64, device=device))
        out.sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None)
    return total


def gradnorm_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over parameters of ``||dL/dtheta||_2`` for the mean cross-entropy ``L`` of the batch (train mode)."""
    net = copy.deepcopy(model).train()
    net.zero_grad(set_to_none=True)
    with torch.random.fork_rng(devices=[]):
        F.cross_entropy(net(x), y).backward()
    return sum(float(p.grad.norm()) for p in net.parameters() if p.grad is not None)


def score_batch(images: torch.Tensor, labels: torch.Tensor, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` images spread evenly over the dataset (no RNG), standardised per channel: (x, y)."""
    n = images.shape[0]
    idx = torch.linspace(0, n - 1, steps=min(size, n)).round().long().unique()
    x = images[idx].to(torch.float32) / 255.0
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x - mean) / std, labels[idx].to(torch.int64)


def zero_cost_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """``zc_naswot``, ``zc_synflow``, ``zc_gradnorm`` of ``model`` on the batch ``(x, y)``.

    A score that cannot be computed (e.g. no ReLU) is NaN; a non-finite one is kept as it is.
    """
    out: dict[str, float] = {}
    for name, fn in (("zc_naswot", lambda: naswot_score(model, x)),
                     ("zc_synflow", lambda: synflow_score(model, tuple(x.shape[1:]))),
                     ("zc_gradnorm", lambda: gradnorm_score(model, x, y))):
        try:
            out[name] = fn()
        except (ValueError, RuntimeError):
            out[name] = math.nan
    return out
