"""Training keeps one batch shape: under torch.compile two epochs trace exactly one training graph,
and every epoch's step count and image count follow from dropping the last partial batch."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch._dynamo
import torch._dynamo.utils
from torch import nn

from nasattn.recipe import Recipe
from nasattn.engine import train
from nasattn.engine.trainer import compile_model
from tests.test_engine import DATA, FAST, tiny


def _graphs_after_training(batch_size: int, epochs: int = 2) -> tuple[int, int, list[dict]]:
    """(unique graphs, recompiles, history) of ``epochs`` trace-only compiled epochs without evaluation."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    recipe = Recipe(**{**FAST, "epochs": epochs, "batch_size": batch_size, "amp": "off"}, compile=True,
                    compile_mode="trace-only")
    res = train(None, recipe, DATA, seed=0, device="cpu", progress=False, model=tiny(), evaluate=False)
    counters = torch._dynamo.utils.counters
    graphs = int(counters["stats"]["unique_graphs"])
    recompiles = sum(counters["recompiles"].values()) if "recompiles" in counters else 0
    return graphs, recompiles, res.history


def test_two_compiled_epochs_trace_one_training_graph():
    n_train = 140  # 70% of DATA's 200 images; 140 = 4 * 32 + 12: a partial batch of 12 would follow
    graphs, recompiles, history = _graphs_after_training(batch_size=32)
    assert (graphs, recompiles) == (1, 0)
    assert [r["train_images"] for r in history] == [n_train // 32 * 32] * 2


def test_a_training_split_smaller_than_a_batch_is_one_step_of_all_of_it():
    res = train(None, Recipe(**{**FAST, "epochs": 1, "batch_size": 512}), DATA, seed=0, device="cpu",
                progress=False, model=tiny(), evaluate=False)
    assert res.history[0]["train_images"] == 140


def test_evaluation_still_uses_every_image():
    res = train(None, Recipe(**{**FAST, "epochs": 1, "eval_batch_size": 7}), DATA, seed=0, device="cpu",
                progress=False, model=tiny())
    assert len(res.predictions["index"]) == res.metrics["n_test"] == 30


def test_reduce_overhead_falls_back_to_default_on_the_cpu_and_says_so(monkeypatch):
    seen = {}

    def fake_compile(model: nn.Module, **kw):
        seen.update(kw)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    recipe = Recipe(**FAST, compile=True, compile_mode="reduce-overhead")
    with pytest.warns(UserWarning, match="needs CUDA"):
        compile_model(tiny(), recipe, torch.device("cpu"))
    assert seen == {"mode": "default"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile_model(tiny(), recipe, torch.device("cuda"))  # no CUDA is touched: only the mode is chosen
    assert seen == {"mode": "reduce-overhead"}
    assert compile_model(tiny(), Recipe(**FAST), torch.device("cpu")).__class__.__name__ == "TinyNet"
