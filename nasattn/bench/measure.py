"""The engine side of ``nasattn bench``, the comparison with the naive pipeline, and the JSON record.

The engine is measured through ``nasattn.engine.train`` itself (``max_steps_per_epoch`` caps the
steps; ``images_per_second`` of its history is the training-loop time only, evaluation excluded): a
warm-up call of ``warmup`` steps, then a timed call of ``steps`` steps that continues the same model.
While measuring throughput the bench calls ``train(..., evaluate=False)``: no validation, test or
profiling (untimed, but they would dominate the bench's wall time on the full dataset), so those calls
have no accuracy. ``--to-accuracy`` trains normally.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import nasattn
from nasattn.bench.naive import NaiveOptions, default_workers, naive_throughput
from nasattn.bench.compiled_ops import compiled_ops_per_step
from nasattn.bench.ops import ops_per_step
from nasattn.config import ConfigError, validate
from nasattn.data import IMAGENET_MEAN, IMAGENET_STD, load_dataset, normalize, split_dataset
from nasattn.data.stats import cached_channel_stats
from nasattn.recipe import Recipe
from nasattn.engine import StopTraining, adapt_to_dataset, resolve_device, train
from nasattn.presets import get_preset
from nasattn.report.env import cpu_name

if TYPE_CHECKING:
    from nasattn.data import ImageDataset
    from nasattn.spec import ArchSpec

__all__ = ["BenchOptions", "engine_throughput", "machine_info", "run_bench", "time_to_accuracy"]


# ---------------------------------------------------------------------------------------------- helpers
def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """CPU model (:func:`nasattn.report.env.cpu_name`), cores, load, torch/torchvision versions and the GPU (if any)."""
    import torchvision


    dev = torch.device(device) if isinstance(device, str) else device
    gpu = None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(dev if dev.type == "cuda" else 0)
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "gpu": gpu,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nasattn": nasattn.__version__,
    }
    return info


# ---------------------------------------------------------------------------------------------- engine
def engine_throughput(
    spec: ArchSpec,
    recipe: Recipe,
    dataset: ImageDataset,
    *,
    steps: int = 20,
    warmup: int = 3,
    epochs: int | None = None,
    device: str = "auto",
    seed: int = 0,
    skip_eval: bool = True,
) -> dict[str, Any]:
    """Time nasattn's engine (``train``) on ``spec``/``recipe``: ``steps`` steps after ``warmup`` steps.

    With ``epochs``, times that many full epochs (after the warm-up) instead. Images/s come from the
    trainer's history (training loop only); seconds per epoch are measured with ``epochs``, else
    extrapolated as ``n_train / images/s``.
    """
    on_cuda = resolve_device(device).type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    model = None
    if warmup > 0:
        res = train(spec, recipe.model_copy(update={"epochs": 1}), dataset, seed=seed, device=device,
                    progress=False, max_steps_per_epoch=warmup, evaluate=not skip_eval)
        model = res.model
    timed = recipe.model_copy(update={"epochs": epochs or 1})
    res = train(spec, timed, dataset, seed=seed, device=device, progress=False, model=model,
                max_steps_per_epoch=None if epochs else steps, evaluate=not skip_eval)
    hist = res.history
    images = sum(int(r["train_images"]) for r in hist)
    seconds = sum(r["train_images"] / r["images_per_second"] for r in hist)
    ips = images / seconds if seconds > 0 else float("nan")
    n_train = int(res.metrics["n_train"])
    bs = recipe.batch_size
    steps_per_epoch = max(1, n_train // bs)  # whole batches only, as the engine trains
    return {
        "pipeline": "engine",
        "images_per_second": ips,
        "seconds_per_epoch": seconds / len(hist) if epochs else n_train / ips,
        "seconds_per_epoch_measured": bool(epochs),
        "timed_steps": len(hist) * steps_per_epoch if epochs else min(steps, steps_per_epoch),
        "timed_images": images,
        "timed_seconds": seconds,
        "warmup_steps": warmup,
        "n_train": n_train,
        "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if on_cuda else None,
        "settings": {
            "data": "decoded-once uint8 tensor cache on the device; batches sliced from a seeded permutation",
            "augment": f"{recipe.augment}, batched on the device",
            "amp": res.metrics.get("amp"),
            "channels_last": res.metrics.get("channels_last"),
            "compile": bool(recipe.compile),
            "optimizer": f"{recipe.optimizer} (foreach on CPU, fused on CUDA)",
            "evaluation_skipped": bool(skip_eval),
            "device": res.metrics.get("device"),
        },
    }


def _accuracy(model: torch.nn.Module, dataset: ImageDataset, idx: np.ndarray, mean: Sequence[float], std: Sequence[float],
              batch_size: int) -> float:
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.inference_mode():
            for i in range(0, len(idx), batch_size):
                sel = torch.as_tensor(idx[i:i + batch_size])
                x = normalize(dataset.images[sel].to(dev), mean, std)
                correct += int((model(x).argmax(dim=1).cpu() == dataset.labels[sel]).sum())
    finally:
        model.train(was_training)
    return correct / max(1, len(idx))


def time_to_accuracy(
    spec: ArchSpec,
    recipe: Recipe,
    dataset: ImageDataset,
    target: float,
    *,
    test_idx: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    max_epochs: int,
    device: str = "auto",
    seed: int = 0,
    time_box: float | None = None,
) -> dict[str, Any]:
    """Wall time of the engine until *test* accuracy first reaches ``target`` (at most ``max_epochs`` epochs).

    An epoch callback evaluates the test split after every epoch (its own time is subtracted; the
    engine's val evaluation, part of normal training, is counted) and stops training once reached, or
    after the first epoch that ends past ``time_box`` seconds. ``stopped`` says which ended it.
    """
    rows: list[dict[str, Any]] = []
    probe: dict[str, Any] = {"seconds": 0.0, "reached": None, "time_box": False}
    t0 = time.perf_counter()

    def on_epoch(epoch: int, row: dict[str, Any], state: Any) -> None:
        t = time.perf_counter()
        acc = _accuracy(state.model, dataset, test_idx, mean, std, recipe.eval_batch_size)
        elapsed = t - t0 - probe["seconds"]
        probe["seconds"] += time.perf_counter() - t
        rows.append({"epoch": epoch, "test_accuracy": acc, "val_accuracy": row["val_accuracy"], "wall_seconds": elapsed,
                     "train_images": row["train_images"], "images_per_second": row["images_per_second"]})
        if acc >= target:
            probe["reached"] = elapsed
            raise StopTraining
        if time_box is not None and elapsed >= time_box:
            probe["time_box"] = True
            raise StopTraining

    train(spec, recipe.model_copy(update={"epochs": max_epochs}), dataset, seed=seed, device=device,
          progress=False, callbacks=[on_epoch])
    return {
        "target": target,
        "metric": "test_accuracy (evaluated after every epoch; evaluation time excluded)",
        "reached": probe["reached"] is not None,
        "seconds": probe["reached"],
        "epochs": rows[-1]["epoch"] if probe["reached"] is not None else None,
        "max_epochs": max_epochs,
        "stopped": "target" if probe["reached"] is not None else "time box" if probe["time_box"] else "max_epochs",
        "time_box": time_box,
        "best_test_accuracy": max((r["test_accuracy"] for r in rows), default=None),
        "augment": recipe.augment,
        "history": rows,
    }


# ---------------------------------------------------------------------------------------------- bench
@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class BenchOptions:
    """What ``run_bench`` measures: the preset at ``width_mult`` on ``data`` (a folder, zip or ``eurosat-mini``;
    None: ``$NASATTN_DATA``), ``steps`` timed steps after ``warmup`` (or ``epochs`` whole epochs), the engine's
    ``amp``/``channels_last``/``compile``, the naive loader's ``workers``, and ``to_accuracy`` (a test
    accuracy to time the engine to, within ``max_epochs``); ``count_compiled``: also the compiled step's launches."""

    preset: str = "balanced"
    width_mult: float = 0.25
    data: str | os.PathLike | None = None
    device: str = "auto"
    batch_size: int = 64
    steps: int = 20
    warmup: int = 3
    epochs: int | None = None
    threads: int | None = None
    compile: bool = False
    workers: int | None = None
    augment: str = "flips"
    channels_last: str = "auto"
    amp: str = "auto"
    to_accuracy: float | None = None
    max_epochs: int | None = None
    seed: int = 0
    count_compiled: bool = False  # also count the compiled step's kernel launches (compiles the model: slow on a CPU)


def run_bench(
    options: BenchOptions,
    *,
    json_path: str | os.PathLike | None = None,
    command: str | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Measure the engine and the naive pipeline on one preset; returns (and writes) the JSON record.

    ``pipelines.engine`` / ``pipelines.naive`` hold images/s and seconds per epoch; ``ratio`` is engine
    images/s over naive images/s (the engine with its defaults); ``pipelines.engine_fp32_nchw`` is the
    engine at the naive pipeline's precision and layout (float32, NCHW) and ``ratio_same_precision`` its
    ratio to naive (the data path and loop alone); ``ops_per_step`` the engine's aten ops per training step in eager mode
    (``nasattn.bench.ops``: about the kernel launches a GPU would see); with ``count_compiled``,
    ``ops_per_step_compiled`` the same step with the model's forward+backward compiled by Inductor
    (``nasattn.bench.compiled_ops``: its kernel launches). ``to_accuracy`` adds the engine's wall time to that test accuracy.
    ``log`` (optional) is called with progress messages.
    """
    o = options
    say = log or (lambda msg: None)
    _check_options(o)
    dev = resolve_device(o.device)
    p = get_preset(o.preset)
    spec, recipe, dataset, splits = _bench_inputs(o, p, say)
    train_idx = np.asarray(splits.train, dtype=np.int64)
    if recipe.normalize == "imagenet":
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    else:
        mean, std = cached_channel_stats(dataset, train_idx)
    n_workers = default_workers(dev) if o.workers is None else o.workers

    record: dict[str, Any] = {
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": {
            "preset": o.preset, "width_mult": o.width_mult, "data": dataset.source, "n_images": len(dataset),
            "n_train": len(train_idx), "batch_size": o.batch_size, "steps": o.steps, "warmup": o.warmup, "epochs": o.epochs,
            "device": str(dev), "threads": o.threads, "compile": o.compile, "workers": n_workers, "augment": o.augment,
            "channels_last": o.channels_last, "amp": recipe.amp, "seed": o.seed, "normalize": recipe.normalize,
        },
    }
    with _threads(o.threads):
        record["machine"] = machine_info(dev)
        say("engine: nasattn.engine.train ...")
        engine = engine_throughput(spec, recipe, dataset, steps=o.steps, warmup=o.warmup, epochs=o.epochs,
                                   device=str(dev), seed=o.seed)
        say(f"engine: {engine['images_per_second']:.1f} images/s")
        same = recipe.model_copy(update={"amp": "off", "channels_last": "off"})
        say("engine at the naive pipeline's precision and layout (float32, NCHW) ...")
        engine_same = engine_throughput(spec, same, dataset, steps=o.steps, warmup=o.warmup, epochs=o.epochs, device=str(dev),
                                        seed=o.seed)
        say(f"naive: ImageFolder + DataLoader ({n_workers} workers) ...")
        naive = naive_throughput(spec, recipe, dataset, train_idx, mean, std, NaiveOptions(
            steps=o.steps, warmup=o.warmup, epochs=o.epochs, num_workers=n_workers, device=str(dev), seed=o.seed, augment=o.augment))
        say(f"naive: {naive['images_per_second']:.1f} images/s")
        record["pipelines"] = {"engine": engine, "engine_fp32_nchw": engine_same, "naive": naive}
        say("engine: aten ops per training step (eager) ...")
        record["ops_per_step"] = ops_per_step(spec, recipe.model_copy(update={"compile": False}), dataset, device=str(dev))
        if o.count_compiled:
            say("engine: kernel launches per training step (compiled with Inductor on the CPU) ...")
            record["ops_per_step_compiled"] = compiled_ops_per_step(spec, dataset, recipe.batch_size,
                                                                    record["ops_per_step"]["ops_per_step"])
        ratio = engine["images_per_second"] / naive["images_per_second"] if naive["images_per_second"] > 0 else math.nan
        record["ratio"] = ratio
        record["ratio_same_precision"] = (engine_same["images_per_second"] / naive["images_per_second"]
                                          if naive["images_per_second"] > 0 else math.nan)
        record["to_accuracy"] = None
        if o.to_accuracy is not None:
            record["to_accuracy"] = _time_to_accuracy(o, p, spec, dataset, splits, mean, std, str(dev), say)
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def _check_options(o: BenchOptions) -> None:
    """A ConfigError naming the option when ``o`` holds a value the bench cannot run."""
    if o.steps < 1 or o.warmup < 0 or (o.epochs is not None and o.epochs < 1) or o.batch_size < 1:
        raise ConfigError("--steps and --batch-size must be >= 1, --warmup >= 0, --epochs >= 1")
    if o.augment not in ("flips", "none"):
        raise ConfigError(f"--augment {o.augment!r}: allowed: flips, none (what both pipelines can do)")
    if o.to_accuracy is not None and not 0 < o.to_accuracy <= 1:
        raise ConfigError(f"--to-accuracy {o.to_accuracy}: give a fraction in (0, 1], e.g. 0.9")


def _bench_inputs(o: BenchOptions, p: Any, say: Any) -> tuple[Any, Any, Any, Any]:
    """``(spec, recipe, dataset, splits)``: the preset ``p`` at the options' width, batch, augmentation and
    precision, adapted to the dataset (notes passed to ``say``), and the recipe's split of the dataset."""
    spec = p.arch.scaled(o.width_mult)
    dataset = load_dataset(o.data)
    recipe = validate(Recipe, {
        **p.recipe_dict, "batch_size": o.batch_size, "augment": o.augment, "compile": o.compile,
        "channels_last": o.channels_last, "amp": o.amp,
    }, "bench options")
    spec, recipe, notes = adapt_to_dataset(spec, recipe, dataset.classes)
    for note in notes:
        say(f"note: {note}")
    splits = split_dataset(dataset.labels, recipe.split_ratios, recipe.split_seed, recipe.stratify)
    return spec, recipe, dataset, splits


def _time_to_accuracy(o: BenchOptions, p: Any, spec: Any, dataset: Any, splits: Any, mean: Any, std: Any, dev: str,
                      say: Any) -> dict[str, Any]:
    """The engine's wall time to ``o.to_accuracy`` with the preset's recipe (within ``o.max_epochs``)."""
    acc_recipe = Recipe.model_validate({**p.recipe_dict, "batch_size": o.batch_size, "compile": o.compile,
                                        "channels_last": o.channels_last, "amp": o.amp})
    acc_recipe = adapt_to_dataset(spec, acc_recipe, dataset.classes)[1]
    cap = o.max_epochs or acc_recipe.epochs
    say(f"engine: training to test accuracy {o.to_accuracy:.2%} (at most {cap} epochs) ...")
    return time_to_accuracy(
        spec, acc_recipe, dataset, o.to_accuracy, test_idx=np.asarray(splits.test, dtype=np.int64),
        mean=mean, std=std, max_epochs=cap, device=dev, seed=o.seed,
    )
