"""Parameters, FLOPs (``torch.utils.flop_counter``) and layer counts of a model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: nn.Module, input_shape: tuple[int, ...] = (3, 64, 64)) -> int:
    """FLOPs of one forward pass of a single image in eval mode (a multiply-add counts as 2)."""
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        x = torch.zeros(1, *input_shape, device=param.device if param is not None else "cpu")
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def profile_model(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """``params``, ``flops``, and for nasattn models the paper's ``layers`` and ``conv_layers``."""
    spec = getattr(model, "spec", None)
    if input_shape is None:
        input_shape = (spec.in_channels, spec.input_size, spec.input_size) if spec else (3, 64, 64)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "flops": count_flops(model, input_shape),
        "layers": spec.layers if spec else None,
        "conv_layers": spec.conv_layers if spec else None,
    }
