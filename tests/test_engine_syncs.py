"""What the training loop reads back from the device: nothing per step without a progress bar, alpha once
per epoch for all blocks together; fp16 autocast with a GradScaler runs on the CPU."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from nasattn.blocks.fusion import LearnableAlpha
from nasattn.recipe import Recipe
from nasattn.engine import train

READS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__")


def _data(n: int = 240, k: int = 3, size: int = 8) -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % k
    images = (labels.view(n, 1, 1, 1) * 80 + torch.rand(n, 3, size, size, generator=g) * 60).to(torch.uint8)
    return SimpleNamespace(images=images, labels=labels, classes=[f"c{i}" for i in range(k)])


class Net(nn.Module):
    def __init__(self, fusions: int, k: int = 3, width: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.fuse = nn.Sequential(*[LearnableAlpha(width, nn.Identity(), nn.Conv2d(width, width, 1)) for _ in range(fusions)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fuse(self.stem(x)))


def _count_reads(monkeypatch: pytest.MonkeyPatch, **kw) -> int:
    """Tensor -> Python reads made by nasattn's own code during one training of ``Net``."""
    count = {"n": 0}
    for name in READS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *a, _original=original, **k):
            if sys._getframe(1).f_globals.get("__name__", "").startswith("nasattn"):
                count["n"] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    fusions, steps = kw.pop("fusions"), kw.pop("steps")
    recipe = Recipe(epochs=2, batch_size=8, eval_batch_size=512, schedule="none", amp="off", **kw)
    torch.manual_seed(0)
    train(None, recipe, _data(), seed=0, device="cpu", progress=False, model=Net(fusions), max_steps_per_epoch=steps)
    monkeypatch.undo()
    return count["n"]


def test_no_read_per_step_or_per_alpha_block_without_progress_bar(monkeypatch):
    few = _count_reads(monkeypatch, fusions=1, steps=2)
    many = _count_reads(monkeypatch, fusions=1, steps=12)
    assert many == few
    assert _count_reads(monkeypatch, fusions=4, steps=2) == few


def test_fp16_with_grad_scaler_trains_on_cpu():
    seen = {}

    def grab(epoch, row, state):
        seen["scaler"] = state.scaler.is_enabled()
        seen["scale"] = state.scaler.get_scale()

    recipe = Recipe(epochs=1, batch_size=16, schedule="none", amp="fp16")
    res = train(None, recipe, _data(), seed=0, device="cpu", progress=False, model=Net(1), callbacks=[grab])
    assert res.metrics["amp"] == "fp16" and seen["scaler"] and seen["scale"] > 1.0
    assert math.isfinite(res.history[0]["train_loss"])


def test_tf32_only_for_float32_on_cuda_and_restored():
    from nasattn.engine.trainer import _backend_flags

    before = torch.get_float32_matmul_precision()
    with _backend_flags(torch.device("cuda"), None):  # flags only: no CUDA needed
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.benchmark
    assert torch.get_float32_matmul_precision() == before
    with _backend_flags(torch.device("cuda"), torch.bfloat16):
        assert torch.get_float32_matmul_precision() == before
    with _backend_flags(torch.device("cpu"), None):
        assert torch.get_float32_matmul_precision() == before and torch.are_deterministic_algorithms_enabled()
