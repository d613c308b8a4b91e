"""Trials train on the devices Ray assigned them: placement tested against a Ray with logical GPUs.

A CPU machine can declare GPUs to Ray (``num_gpus=2``); Ray then assigns GPU ids and sets
``CUDA_VISIBLE_DEVICES`` per trial as it would on a GPU machine.  ``NASATTN_TRIAL_DEVICE=cpu`` (a
test-only switch) lets such trials train on the CPU, and ``NASATTN_TEST_RENDEZVOUS`` holds each
trial until the expected number run at once, so concurrency is seen, not guessed from timing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from nasattn.presets import get_preset
from nasattn.schema import ENV_TEST_RENDEZVOUS, ENV_TRIAL_DEVICE, PLACEMENT_FILE
from nasattn.tune.placement import TrialDeviceError, choose_device

from test_search import TINY_SPACE as SEARCH_TINY_SPACE  # the suite's tiny space

TINY_SPACE = {**SEARCH_TINY_SPACE, "recipe": {"lr": 0.01, "optimizer": "sgd"}}  # no diverging trials here


# ------------------------------------------------------------------------------ the device rule
def test_auto_without_an_assigned_gpu_trains_on_the_cpu_even_when_cuda_is_visible():
    assert choose_device("auto", [], "t1", cuda_available=lambda: True) == "cpu"
    assert choose_device("auto", ["1"], "t1", cuda_available=lambda: True) == "cuda"
    assert choose_device("cpu", ["0"], "t1", cuda_available=lambda: True) == "cpu"


def test_an_assigned_gpu_without_cuda_is_an_error_naming_trial_and_assignment():
    with pytest.raises(TrialDeviceError, match=r"trial abc_00003: Ray assigned GPU ids \['1'\].*CUDA is not available"):
        choose_device("auto", ["1"], "abc_00003", cuda_available=lambda: False)
    with pytest.raises(TrialDeviceError, match=r"trial t: device 'cuda' but Ray assigned it no GPU"):
        choose_device("cuda", [], "t", cuda_available=lambda: True)
    assert choose_device("auto", ["1"], "t", cuda_available=lambda: False, forced="cpu") == "cpu"


# ------------------------------------------------------------------------------ helpers
def _placements(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob(PLACEMENT_FILE))]


def _peak(records: list[dict]) -> list[dict]:
    """The largest set of trials that were running at one moment (from their start and end times)."""
    best: list[dict] = []
    for r in records:
        at = r["started"]
        running = [q for q in records if q["started"] <= at < q.get("ended", float("inf"))]
        if len(running) > len(best):
            best = running
    return best


def _tiny_arch() -> dict:
    return get_preset("baseline").arch.scaled(0.125).to_dict()


def _grid_config(run_dir: Path) -> dict:
    return {"arch": _tiny_arch(), "recipe": {"epochs": 1, "batch_size": 32, "eval_batch_size": 256},
            "data": "eurosat-mini", "max_steps_per_epoch": 1, "run_dir": str(run_dir)}


@pytest.fixture(scope="module")
def logical_gpus(tmp_path_factory: pytest.TempPathFactory):
    """One embedded Ray with 8 CPUs and 2 logical GPUs for the packing tests; yields the rendezvous folder.

    Ray's workers take the driver's environment when Ray starts, so the CPU switch and a rendezvous of
    4 trials are set before it; each test empties the folder before its run (its trials then wait for 4).
    """
    from nasattn.tune import ray_session

    folder = tmp_path_factory.mktemp("rendezvous")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_TRIAL_DEVICE, "cpu")
        mp.setenv(ENV_TEST_RENDEZVOUS, f"{folder},4,90")
        with ray_session(None, num_cpus=8, num_gpus=2):
            yield folder


def _fresh(folder: Path) -> None:
    """Empty the rendezvous folder: the next run's trials wait until 4 of their own have arrived."""
    for path in folder.iterdir():
        path.unlink()


# ------------------------------------------------------------------------------ through Ray
@pytest.mark.slow
def test_zero_gpu_trials_see_no_gpu_and_a_gpu_trial_without_cuda_fails(tmp_path, monkeypatch):
    """gpus_per_trial 0 on a machine with GPUs: no GPU id, CUDA_VISIBLE_DEVICES empty, CPU; 0.5 without CUDA: an error."""
    import ray  # lazy: ray is a heavy optional package

    from nasattn.tune import ray_session, run_grid

    if torch.cuda.is_available():
        pytest.skip("the no-CUDA error needs a machine without CUDA")
    assert not ray.is_initialized(), "needs its own Ray: logical_gpus' workers force the CPU"
    monkeypatch.delenv(ENV_TRIAL_DEVICE, raising=False)
    monkeypatch.delenv("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", raising=False)
    with ray_session(None, num_cpus=2, num_gpus=2):
        run_grid([_grid_config(tmp_path / "cpu0")], storage_path=tmp_path, name="zero", cpus_per_trial=1, gpus_per_trial=0)
        grid = run_grid([_grid_config(tmp_path / "gpu")], storage_path=tmp_path, name="half",
                        cpus_per_trial=1, gpus_per_trial=0.5)
    [rec] = _placements(tmp_path / "cpu0")  # two GPUs free, none given
    assert rec["gpu_ids"] == [] and rec["cuda_visible_devices"] == "" and rec["device"] == "cpu", rec
    assert "ended" in rec and (tmp_path / "cpu0" / "metrics.json").is_file()  # trained to the end
    [result] = list(grid)
    assert result.error is not None
    err = (tmp_path / "gpu" / "ERROR").read_text()
    assert "TrialDeviceError" in err and "CUDA is not available" in err, err
    assert re.search(r"trial [0-9a-f]{5}_\d{5}: Ray assigned GPU ids \['[01]'\] \(CUDA_VISIBLE_DEVICES='[01]'\)", err), err
    assert not (tmp_path / "gpu" / "metrics.json").exists()  # no silent CPU run


@pytest.mark.slow
def test_search_packs_four_trials_two_per_logical_gpu(tmp_path, logical_gpus):
    """As the README's 16 CPUs / 2 GPUs / 0.25 GPU per trial example, at half the size (a suite on 2 cores):
    8 CPUs, 2 GPUs, cpus_per_trial 2, gpus_per_trial 0.5 -> 4 trials at once, two per GPU; the 5th waits."""
    from nasattn.search.run import run_search
    from nasattn.search.study import load_study

    _fresh(logical_gpus)
    study = {
        "name": "packing", "space": TINY_SPACE, "data": "eurosat-mini",
        "budget": {"trials": 5, "epochs": 1, "max_steps_per_epoch": 1},
        "sampler": {"type": "random", "seed": 0}, "early_stopping": "none",
        "resources": {"cpus_per_trial": 2, "gpus_per_trial": 0.5, "num_cpus": 8, "num_gpus": 2},  # logical_gpus' Ray
        "train": {"recipe": {"eval_batch_size": 256, "batch_size": 32}, "checkpoint_every": 0, "zero_cost": False},
        "output": str(tmp_path / "out"), "report": False,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    result = run_search(load_study(path), live=False)
    assert result.counts.get("COMPLETE") == 5, result.counts
    records = _placements(tmp_path / "out" / "trials")
    assert len(records) == 5
    for rec in records:
        assert len(rec["gpu_ids"]) == 1 and rec["gpu_ids"][0] in ("0", "1"), rec
        assert rec["cuda_visible_devices"] == rec["gpu_ids"][0] and rec["device"] == "cpu" and rec["forced"], rec
    peak = _peak(records)
    assert len(peak) == 4, [(r["trial"], r["started"], r.get("ended")) for r in records]
    assert Counter(r["cuda_visible_devices"] for r in peak) == {"0": 2, "1": 2}


@pytest.mark.slow
def test_ablation_packs_four_trials_two_per_logical_gpu(tmp_path, logical_gpus):
    """8 CPUs, 2 GPUs, cpus_per_trial 1, gpus_per_trial 0.5 -> 4 at once (the GPUs are the limit), two per GPU;
    the 5th and 6th wait."""
    from nasattn.ablation import load_ablation, run_ablation

    _fresh(logical_gpus)
    out = tmp_path / "abl"
    overrides = {
        "base": {"preset": "baseline"}, "include": ["se_only", "cbam"], "seeds": [0, 1],
        "data": "eurosat-mini", "epochs": 1, "width_mult": 0.125, "max_steps_per_epoch": 1, "checkpoint_every": 0,
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0.5, "num_cpus": 8, "num_gpus": 2},  # logical_gpus' Ray
        "output": str(out), "report": False, "zero_cost": False,
    }
    loaded = load_ablation(None, overrides)
    result = run_ablation(loaded, live=False)
    records = _placements(out / "runs")
    assert len(records) == len(result.rows) == 6, result.counts
    assert result.counts.get("COMPLETE") == 6, result.counts
    for rec in records:
        assert rec["cuda_visible_devices"] == rec["gpu_ids"][0] and len(rec["gpu_ids"]) == 1, rec
    peak = _peak(records)
    assert len(peak) == 4
    assert Counter(r["cuda_visible_devices"] for r in peak) == {"0": 2, "1": 2}


# ------------------------------------------------------------------------------ latency, checkpoints
class _Probe(torch.nn.Module):
    """A conv net that records the device and grad mode of what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.seen: set[tuple[str, bool]] = set()

    def forward(self, x):
        self.seen.add((x.device.type, torch.is_grad_enabled()))
        return self.conv(x).mean((2, 3))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_latency_is_timed_on_the_trials_device_without_grad(device):
    from nasattn.tune.trainable import measure_latency

    model = _Probe().train()
    seconds = measure_latency(model, 16, 3, device, min_run_time=0.05)
    assert 0 < seconds < 1
    assert model.seen == {(device, False)}
    assert next(model.parameters()).device.type == device and model.training


def test_a_trial_checkpoint_loads_with_weights_only(tmp_path):
    """The state a trial saves (TrainState.checkpoint) round-trips through torch.load(weights_only=True)."""
    from nasattn.data import load_dataset
    from nasattn.recipe import Recipe
    from nasattn.engine import train
    from nasattn.spec import ArchSpec
    from nasattn.tune.trainable import STATE_FILE

    saved = {}

    def keep(epoch, row, state):
        saved["ckpt"] = state.checkpoint()

    spec = ArchSpec.from_dict(_tiny_arch(), "test")
    recipe = Recipe.model_validate({"epochs": 2, "batch_size": 32, "eval_batch_size": 256})
    train(spec, recipe, load_dataset("eurosat-mini", progress=False), seed=0, device="cpu", callbacks=(keep,),
          progress=False, max_steps_per_epoch=1)
    path = tmp_path / STATE_FILE
    torch.save(saved["ckpt"], path)
    back = torch.load(path, map_location="cpu", weights_only=True)
    assert back["epoch"] == saved["ckpt"]["epoch"] == 2
    for key, value in saved["ckpt"]["model"].items():
        assert torch.equal(back["model"][key], value), key
    assert torch.equal(back["rng"]["torch"], saved["ckpt"]["rng"]["torch"])
    assert back["rng"]["python"] == saved["ckpt"]["rng"]["python"]


@pytest.mark.parametrize("compile_, device, calls", [
    (False, "cpu", []), (True, "cpu", ["compiler.reset"]), (False, "cuda:1", ["cuda.empty_cache"]),
    (True, "cuda", ["compiler.reset", "cuda.empty_cache"]),
])
def test_a_reused_trial_process_drops_the_compile_caches_and_the_gpu_memory_of_earlier_trials(monkeypatch, compile_, device, calls):
    """Tune reuses trial actors: each trial starts without the earlier ones' compiled graphs and cached CUDA memory
    (the CUDA call is recorded here, on a machine without CUDA)."""
    from nasattn.recipe import Recipe
    from nasattn.tune.trainable import forget_earlier_trials

    seen: list[str] = []
    monkeypatch.setattr(torch.compiler, "reset", lambda: seen.append("compiler.reset"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: seen.append("cuda.empty_cache"))
    forget_earlier_trials(Recipe(compile=compile_), device)
    assert seen == calls

