"""The alpha control: ``no_weight_decay`` parameter groups, and the weight-decay-only trajectory of alpha
checked against torch's optimisers stepping a parameter with zero gradient under the engine's schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nasattn.blocks.fusion import LearnableAlpha
from nasattn.recipe import Recipe
from nasattn.engine import train
from nasattn.engine.decay import DecayOnly, no_decay_parameters
from nasattn.engine.schedule import LRSchedule
from nasattn.engine.trainer import _optimizer

FAST = {"epochs": 3, "batch_size": 32, "eval_batch_size": 64, "lr": 1e-2, "schedule": "none"}


def _data(n: int = 96, k: int = 3, size: int = 8):
    """Noise images whose class sets the mean colour."""
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % k
    palette = torch.tensor([[200, 60, 60], [60, 200, 60], [60, 60, 200]], dtype=torch.float32)[:k]
    images = (palette[labels].view(n, 3, 1, 1) + torch.rand(n, 3, size, size, generator=g) * 120 - 60)
    return SimpleNamespace(images=images.clamp(0, 255).to(torch.uint8), labels=labels, classes=[f"c{i}" for i in range(k)])


DATA = _data()


class TinyNet(nn.Module):
    """conv-BN-ReLU -> learnable-alpha fusion (conv branch) -> GAP -> linear."""

    def __init__(self, k: int = 3, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.fuse = LearnableAlpha(width, nn.Identity(), nn.Conv2d(width, width, 1), init=0.5)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fuse(self.body(x)))


class OneScalar(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(value, dtype=torch.float64))


def _zero_gradient_run(recipe: Recipe, init: float, steps_per_epoch: int) -> tuple[list[float], list[float], DecayOnly]:
    """Step the engine's optimiser and schedule on one parameter with zero gradient; follow it with DecayOnly.

    Returns the learning rate of every step, the parameter after every step, and the DecayOnly.
    """
    model = OneScalar(init)
    opt = _optimizer(model, recipe, torch.device("cpu"))
    sched = LRSchedule(opt, recipe, steps_per_epoch)
    decay = DecayOnly.for_recipe(recipe, {"a": init}, {"a": recipe.weight_decay})
    lrs, path = [], []
    for epoch in range(1, recipe.epochs + 1):
        for _ in range(steps_per_epoch):
            lr = opt.param_groups[0]["lr"]
            model.a.grad = torch.zeros_like(model.a)
            opt.step()
            decay.step(lr)
            sched.step_batch()
            lrs.append(lr)
            path.append(float(model.a.detach()))
            assert decay.values["a"] == pytest.approx(path[-1], rel=1e-9, abs=1e-12)
        sched.step_epoch(epoch, 0.5)
    return lrs, path, decay


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "warm_restarts"])
def test_adamw_decay_only_is_the_closed_form_product(schedule):
    """AdamW with zero gradient: a_T = a_0 * prod_t (1 - lr_t * wd), under per-epoch and per-batch schedules."""
    recipe = Recipe(optimizer="adamw", lr=3e-2, weight_decay=0.05, epochs=12, warmup_epochs=2, schedule=schedule, t0=4)
    init = 0.5
    lrs, path, decay = _zero_gradient_run(recipe, init, steps_per_epoch=5)
    closed = init * np.cumprod(1.0 - recipe.weight_decay * np.asarray(lrs))
    assert path == pytest.approx(closed.tolist(), rel=1e-12)
    assert decay.values["a"] == pytest.approx(closed[-1], rel=1e-12)
    assert len(set(lrs)) > 3 and closed[-1] < init  # the schedule varied and decay moved the parameter


@pytest.mark.parametrize("kw", [
    {"optimizer": "adam"},
    {"optimizer": "sgd", "momentum": 0.9, "nesterov": True},
    {"optimizer": "sgd", "momentum": 0.9, "nesterov": False},
    {"optimizer": "sgd", "momentum": 0.0},
])
def test_l2_decay_only_follows_adam_and_sgd(kw):
    """Adam and SGD add wd * p to the gradient: DecayOnly equals torch stepping with zero loss gradient."""
    recipe = Recipe(lr=5e-2, weight_decay=0.1, epochs=6, warmup_epochs=1, schedule="cosine", **kw)
    _, path, _ = _zero_gradient_run(recipe, 1.2, steps_per_epoch=4)  # compared step by step inside
    assert path[-1] < 1.2


def test_no_decay_parameters_pick_fusion_norm_and_bias():
    model = TinyNet()
    assert set(no_decay_parameters(model, ["fusion"])) == {"fuse.alpha"}
    assert set(no_decay_parameters(model, ["norm"])) == {"body.1.weight", "body.1.bias"}
    biases = {n for n, _ in model.named_parameters() if n.endswith(".bias")}
    assert set(no_decay_parameters(model, ["bias"])) == biases
    assert "fuse.channel.bias" in biases  # a fusion block's branches are not "fusion" parameters
    opt = _optimizer(model, Recipe(weight_decay=0.05, no_weight_decay=["fusion", "norm"]), torch.device("cpu"))
    zero = [g for g in opt.param_groups if g["weight_decay"] == 0.0]
    assert len(zero) == 1 and {id(p) for p in zero[0]["params"]} == {
        id(model.fuse.alpha), id(model.body[1].weight), id(model.body[1].bias)}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


class ZeroGradAlpha(TinyNet):
    """TinyNet whose fusion mixes two identical branches: alpha's loss gradient is exactly zero."""

    def __init__(self) -> None:
        super().__init__()
        self.fuse = LearnableAlpha(8, nn.Identity(), nn.Identity(), init=0.5)


def _train_zero_grad_alpha(**kw):
    torch.manual_seed(0)
    recipe = Recipe(**{**FAST, "epochs": 3, "schedule": "cosine", "weight_decay": 0.5, "amp": "off", **kw})
    return train(None, recipe, DATA, seed=0, device="cpu", progress=False, model=ZeroGradAlpha())


def test_alpha_without_gradient_follows_the_decay_only_curve_and_no_weight_decay_keeps_it():
    res = _train_zero_grad_alpha()
    s0 = 1 / (1 + math.exp(-0.5))
    learned = [r["alpha/fuse"] for r in res.history]
    control = [r["alpha_decay_only/fuse"] for r in res.history]
    assert learned == pytest.approx(control, rel=1e-6)
    assert control[-1] < control[0] < s0  # decay alone pulls alpha towards 0.5
    best = res.metrics["best_epoch"]
    assert res.metrics["alpha_decay_only"] == {"fuse": pytest.approx(control[best - 1])}
    assert set(res.metrics["alpha"]) == set(res.metrics["alpha_decay_only"])

    kept = _train_zero_grad_alpha(no_weight_decay=["fusion"])
    assert float(kept.model.fuse.alpha.detach()) == 0.5  # raw value untouched
    assert all(r["alpha/fuse"] == pytest.approx(s0) and r["alpha_decay_only/fuse"] == pytest.approx(s0)
               for r in kept.history)
    assert kept.model.body[0].weight.abs().sum() > 0


def test_run_report_shows_learned_and_decay_only_alpha(tmp_path):
    from nasattn.engine import write_run
    from nasattn.report.run import render_run

    res = _train_zero_grad_alpha(epochs=2)
    res.metrics["alpha"] = {"fuse": 0.7}  # a learned value that differs from the control
    write_run(tmp_path, res)
    page = render_run(tmp_path)
    html = page.render()
    assert "fig-run-alpha" in page.ids
    # one line per stage (the block "fuse" belongs to no stage): learned beside weight decay alone
    assert "all blocks (1 block), learned" in html and "all blocks, weight decay alone" in html
    control = res.metrics["alpha_decay_only"]["fuse"]
    assert "alpha under weight decay alone" in html and f"mean {control:.3f} over 1 blocks" in html
    assert "mean 0.700 over 1 blocks" in html
