"""The doctor's sections.  Each takes a :class:`Context` and writes its checks through a Recorder.

Run one section in this process with ``python -m nasattn.doctor.sections NAME CONTEXT_JSON``
(that is how the runner time-boxes them).

The nasattn imports inside the section functions are deliberate: the doctor runs on bare GPU machines
where pydantic (and so most of nasattn) may be missing, and a section whose imports fail is recorded as
skipped with the reason instead of taking the whole doctor down.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nasattn
from nasattn.doctor.env import child_env
from nasattn.doctor.record import Recorder

AMPS = ("bf16", "fp16", "off")
OPTIONAL = ("pydantic", "yaml", "rich", "typer", "scipy", "sklearn", "pandas", "sqlalchemy", "plotly", "optuna", "ray")
PYDANTIC_HINT = ("pydantic is required for specs and recipes: pip install pydantic (or carry its wheels: "
                 "pydantic, pydantic-core, annotated-types, typing-extensions, typing-inspection)")


@dataclass
class Context:
    """What every section needs: where to write, the device, tiny (dry run) or full sizes, the deadline."""

    out: str
    device: str = "cpu"
    dry: bool = True
    data: str | None = None
    deadline: float = math.inf
    section: str = ""

    @property
    def width(self) -> float:
        return 0.125 if self.dry else 1.0

    @property
    def batch(self) -> int:
        return 8 if self.dry else 128

    @property
    def steps(self) -> int:
        return 2 if self.dry else 20

    def left(self) -> float:
        return self.deadline - time.time()

    def recorder(self) -> Recorder:
        return Recorder(Path(self.out), self.section)


class Skip(Exception):
    """A section or check that cannot run here; the message says why and what to install."""


def importable(module: str) -> bool:
    """Whether ``import module`` works here (imported, so a broken install counts as missing)."""
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - ImportError, or a package that fails while importing
        return False
    return True


def import_within(module: str, seconds: float) -> bool | None:
    """``importable(module)``, or None when it has not finished within ``seconds`` (a daemon thread goes on)."""
    if seconds <= 0:
        return None
    result: dict[str, bool] = {}
    worker = threading.Thread(target=lambda: result.update(ok=importable(module)), daemon=True)
    worker.start()
    worker.join(seconds)
    return result.get("ok")


def _need(module: str, hint: str | None = None) -> None:
    if not importable(module):
        raise Skip(hint or f"{module} is not installed")


def synthetic_dataset(n: int, classes: int = 10, size: int = 64, seed: int = 0):
    """Random uint8 images with balanced labels, as an ``ImageDataset``."""
    import torch

    from nasattn.data.dataset import ImageDataset

    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n, dtype=torch.int64) % classes
    return ImageDataset(images=images, labels=labels, classes=[f"class{i}" for i in range(classes)],
                        source="synthetic", fingerprint=f"synthetic-{n}-{classes}-{size}-{seed}")


def synthetic_image_folder(root: Path, per_class: int = 300, classes: int = 10, size: int = 64) -> Path:
    """An ImageFolder of random PNGs (for the naive pipeline, which reads files); written once."""
    import numpy as np
    from PIL import Image

    done = root / "DONE"
    if done.is_file():
        return root
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    done.write_text("ok\n")
    return root


def _spec_recipe(preset: str, ctx: Context, **recipe: Any):
    from nasattn.recipe import Recipe
    from nasattn.presets import get_preset

    p = get_preset(preset)
    spec = p.arch.scaled(ctx.width) if ctx.width != 1 else p.arch
    rec = Recipe.model_validate({**p.recipe_dict, "batch_size": ctx.batch, "eval_batch_size": 4 * ctx.batch,
                                 "epochs": 1, **recipe})
    return spec, rec


def _checked(rec: Recorder, check: str, fn: Callable[[], dict[str, Any]], ctx: Context | None = None,
             needs: float = 10.0) -> None:
    """Run one check; its dict (with ``status`` when not ok) is recorded, an exception as ``error``.

    With ``ctx``, a check is recorded as ``skipped`` (reason: the time box) instead of started when
    fewer than ``needs`` seconds of the section's box are left.
    """
    if ctx is not None and ctx.left() < needs:
        rec.add(check, "skipped", reason=f"time box: {max(0.0, ctx.left()):.0f} s left of the section's box, "
                                         f"the check needs about {needs:.0f} s (raise --time-scale)")
        return
    t0 = time.time()
    try:
        values = fn()
    except Skip as e:
        rec.add(check, "skipped", reason=str(e))
        return
    except ModuleNotFoundError as e:  # e.g. torchvision, which must match the machine's torch and is not bundled
        rec.add(check, "skipped", reason=f"needs the package {e.name!r}, not installed here ({e})")
        return
    except Exception as e:  # noqa: BLE001 - a check records its own failure and the section goes on
        rec.add(check, "error", error=f"{type(e).__name__}: {e}", seconds=round(time.time() - t0, 3))
        return
    status = values.pop("status", "ok")
    rec.add(check, status, seconds=round(time.time() - t0, 3), **values)


def _cuda(ctx: Context) -> bool:
    return ctx.device.startswith("cuda")


# --------------------------------------------------------------------------------------------- env
def section_env(ctx: Context) -> None:
    import platform

    import torch

    rec = ctx.recorder()
    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
        "device": ctx.device, "dry_run": ctx.dry, "cpu_count": os.cpu_count(),
        "nasattn": nasattn.__version__, "nasattn_path": str(Path(nasattn.__file__).resolve().parent),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            device_name=torch.cuda.get_device_name(0), capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            memory_gib=round(props.total_memory / 2**30, 1), device_count=torch.cuda.device_count(),
            bf16_supported=torch.cuda.is_bf16_supported(), cudnn_version=torch.backends.cudnn.version(),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
    info.update(
        tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32,
        cudnn_enabled=torch.backends.cudnn.enabled, cudnn_benchmark=torch.backends.cudnn.benchmark,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
    )
    rec.add("versions", "ok", **info)
    available: dict[str, bool | None] = dict.fromkeys(OPTIONAL)
    for m in OPTIONAL:  # pydantic first; what the box leaves no time for is not checked (None)
        available[m] = import_within(m, ctx.left() - 5)
        if available[m] is None:
            break
    missing = [m for m, ok in available.items() if ok is False]
    unchecked = [m for m, ok in available.items() if ok is None]
    notes_time = [f"time box: not checked: {', '.join(unchecked)}"] if unchecked else []
    notes = notes_time
    if not available["pydantic"]:
        notes.append(PYDANTIC_HINT)
    if available["ray"] is False:
        notes.append("ray missing: search and ablate need it (pip install 'ray[tune]'); doctor packs plain processes")
    if available["optuna"] is False:
        notes.append("optuna missing: search needs it (pip install optuna)")
    rec.add("packages", "ok" if available["pydantic"] else "fail", available=available, missing=missing, notes=notes)


# ------------------------------------------------------------------------------------- correctness
def section_correctness(ctx: Context) -> None:
    rec = ctx.recorder()
    _need("pydantic", PYDANTIC_HINT)
    from nasattn.presets import list_presets
    from nasattn.engine import train

    data = synthetic_dataset(80 if ctx.dry else 2048)  # 8 per class: the smallest stratified 70/15/15 split
    for preset in list_presets():
        for amp in AMPS:
            def steps(preset: str = preset, amp: str = amp) -> dict[str, Any]:
                spec, recipe = _spec_recipe(preset, ctx, amp=amp)
                res = train(spec, recipe, data, seed=0, device=ctx.device, progress=False,
                            max_steps_per_epoch=ctx.steps if ctx.dry else 5)
                loss = float(res.history[-1]["train_loss"])
                return {"status": "ok" if math.isfinite(loss) else "fail", "train_loss": loss,
                        "amp": res.metrics.get("amp"), "channels_last": res.metrics.get("channels_last")}

            _checked(rec, f"{preset}/{amp}", steps, ctx, needs=20)
    _checked(rec, "resume_equality", lambda: _resume_equality(ctx, data), ctx, needs=20)
    _checked(rec, "dropblock_fraction", lambda: _dropblock_fraction(ctx), ctx, needs=5)


def _resume_equality(ctx: Context, data: Any) -> dict[str, Any]:
    """Two epochs straight vs one epoch, a checkpoint through torch.save/load(weights_only=True), one more."""
    import io

    import torch

    from nasattn.engine import train

    spec, recipe = _spec_recipe("balanced", ctx, epochs=2, amp="off")
    saved: dict[str, Any] = {}

    def keep(epoch: int, row: dict[str, Any], state: Any) -> None:
        if epoch == 1:
            buf = io.BytesIO()
            torch.save(state.checkpoint(), buf)
            saved["ckpt"] = buf.getvalue()

    kw = {"seed": 0, "device": ctx.device, "progress": False, "max_steps_per_epoch": ctx.steps}
    def difference(x: Any, y: Any) -> float:
        a, b = x.model.state_dict(), y.model.state_dict()
        return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].numel())

    full = train(spec, recipe, data, callbacks=(keep,), **kw)
    state = torch.load(io.BytesIO(saved["ckpt"]), map_location="cpu", weights_only=True)
    resumed = train(spec, recipe, data, resume_state=state, **kw)
    diff = difference(full, resumed)
    noise = 0.0
    if diff > 0:  # on a GPU some kernels are not bit-reproducible: compare with a second straight run
        noise = difference(full, train(spec, recipe, data, **kw))
    ok = diff == 0 or diff <= 10 * noise
    return {"status": "ok" if ok else "fail", "max_abs_weight_difference": diff, "run_to_run_difference": noise,
            "cuda_rng_in_checkpoint": "cuda" in state["rng"]}


def _dropblock_fraction(ctx: Context) -> dict[str, Any]:
    """Fraction of zeros of DropBlock on the device vs the CPU path, same p and block size (many draws)."""
    import torch

    from nasattn.blocks.dropblock import ScheduledDropBlock

    p, block, shape = 0.1, 5, (16 if ctx.dry else 64, 16, 32, 32)
    out = {}
    for where in ("cpu", ctx.device):
        torch.manual_seed(0)
        db = ScheduledDropBlock(p, block).train().to(where)
        fractions = [float((db(torch.ones(shape, device=where)) == 0).float().mean()) for _ in range(10)]
        out[where] = sum(fractions) / len(fractions)
    gap = abs(out[ctx.device] - out["cpu"])
    return {"status": "ok" if gap < 0.02 else "fail", "p": p, "block_size": block, "cpu_fraction": out["cpu"],
            "device_fraction": out[ctx.device], "difference": gap}


# ------------------------------------------------------------------------------------------- syncs
def section_syncs(ctx: Context) -> None:
    rec = ctx.recorder()
    _need("pydantic", PYDANTIC_HINT)
    from nasattn.presets import list_presets
    if not _cuda(ctx):
        rec.add("syncs_per_step", "skipped", reason="needs CUDA (torch.cuda.set_sync_debug_mode)")
        return
    import torch

    from nasattn.engine import train

    data = synthetic_dataset(2048)
    for preset in list_presets():
        def count(preset: str = preset) -> dict[str, Any]:
            spec, recipe = _spec_recipe(preset, ctx)

            def syncs_in(steps: int) -> list[Any]:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    torch.cuda.set_sync_debug_mode("warn")
                    try:
                        train(spec, recipe, data, seed=0, device=ctx.device, progress=False, max_steps_per_epoch=steps,
                              evaluate=False)
                    finally:
                        torch.cuda.set_sync_debug_mode(0)
                return [w for w in caught if "synchroniz" in str(w.message).lower()]

            syncs_in(2)  # warm-up (cuDNN autotuning, allocator)
            base, extra = 2, 8
            short, long = syncs_in(base), syncs_in(base + extra)
            per_step = (len(long) - len(short)) / extra  # setup and the epoch's one read cancel out
            sites = sorted({f"{w.filename}:{w.lineno}" for w in long})
            return {"status": "ok" if per_step <= 0 else "fail", "syncs_per_training_step": per_step,
                    "syncs_per_epoch_outside_steps": len(short) - base * per_step, "threshold": 0, "sites": sites[:20],
                    "how": f"syncs of a {base + extra}-step epoch minus a {base}-step one, over {extra} (no evaluation)"}

        _checked(rec, f"{preset}", count, ctx, needs=15)


# ------------------------------------------------------------------------------------------- speed
def section_speed(ctx: Context) -> None:
    rec = ctx.recorder()
    _need("pydantic", PYDANTIC_HINT)
    _need("torchvision", "torchvision is not installed: the naive pipeline (ImageFolder + DataLoader) needs the "
                         "torchvision build that matches this torch (the bundle cannot carry it)")
    from nasattn.presets import list_presets

    with tempfile.TemporaryDirectory(prefix="nasattn-doctor-") as tmp:  # synthetic PNGs never reach --out
        data = "eurosat-mini" if ctx.dry else str(synthetic_image_folder(Path(tmp) / "synthetic-images"))
        for preset in list_presets():
            _speed_check(ctx, rec, preset, data)


def _speed_check(ctx: Context, rec: Recorder, preset: str, data: str) -> None:
    from nasattn.bench.measure import BenchOptions, run_bench

    def bench() -> dict[str, Any]:
        r = run_bench(BenchOptions(preset, ctx.width, data, device=ctx.device, batch_size=ctx.batch, steps=ctx.steps,
                                   warmup=1 if ctx.dry else 3, workers=0 if ctx.dry else None))
        pipes = r["pipelines"]
        return {"width_mult": ctx.width, "batch_size": ctx.batch, "amp": pipes["engine"]["settings"]["amp"],
                "engine_images_per_second": pipes["engine"]["images_per_second"],
                "engine_fp32_nchw_images_per_second": pipes["engine_fp32_nchw"]["images_per_second"],
                "naive_images_per_second": pipes["naive"]["images_per_second"], "ratio": r["ratio"],
                "ratio_same_precision": r["ratio_same_precision"],
                "peak_memory_mib": {k: v.get("peak_memory_mib") for k, v in pipes.items()},
                "ops_per_step": r["ops_per_step"]["ops_per_step"],
                "timing": "whole batches only, after warm-up steps; naive DataLoader workers persistent",
                "data": data if ctx.dry else "synthetic PNGs (temporary folder)"}

    _checked(rec, preset, bench, ctx, needs=30)


# ----------------------------------------------------------------------------------------- packing
def _pack_worker(ctx: Context, preset: str, steps: int) -> dict[str, Any]:
    """One training of ``steps`` steps after a warm-up; prints its images/s as JSON (used by ``packing``)."""
    from nasattn.engine import train

    data = synthetic_dataset(64 if ctx.dry else 4096)
    spec, recipe = _spec_recipe(preset, ctx)
    train(spec, recipe, data, seed=0, device=ctx.device, progress=False, max_steps_per_epoch=1)
    res = train(spec, recipe, data, seed=0, device=ctx.device, progress=False, max_steps_per_epoch=steps)
    h = res.history[-1]
    return {"images": int(h["train_images"]), "seconds": float(h["train_images"]) / float(h["images_per_second"])}


def section_packing(ctx: Context) -> None:
    rec = ctx.recorder()
    _need("pydantic", PYDANTIC_HINT)
    counts = (1, 2) if ctx.dry else (1, 2, 4, 8)
    preset = "baseline" if ctx.dry else "balanced"
    steps = ctx.steps if ctx.dry else 40
    if importable("ray"):  # as a search packs its trials: Ray tasks with a 1/n share of the GPU each
        _pack_through_ray(ctx, rec, counts, preset, steps)
        return
    via = "processes (ray is not installed)"
    for n in counts:
        def pack(n: int = n) -> dict[str, Any]:
            arg = json.dumps({**asdict(ctx), "deadline": None, "section": "pack-worker"})
            env = child_env(OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // n)))
            t0 = time.time()
            procs = [subprocess.Popen([sys.executable, "-m", "nasattn.doctor.sections", "pack-worker", arg, preset, str(steps)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(n)]
            results, errors = [], []
            for p in procs:
                try:
                    so, se = p.communicate(timeout=max(5.0, ctx.left() - 5))
                except subprocess.TimeoutExpired:
                    p.kill()
                    so, se = p.communicate()
                    errors.append("killed at the section's time box")
                    continue
                lines = [ln for ln in so.splitlines() if ln.startswith("{")]
                if p.returncode == 0 and lines:
                    results.append(json.loads(lines[-1]))
                else:
                    errors.append(" | ".join((se or "no output").strip().splitlines()[-3:]))
            wall = time.time() - t0
            if errors:
                return {"status": "error", "error": errors[0], "finished": len(results), "of": n}
            per = [r["images"] / r["seconds"] for r in results]
            return {"processes": n, "preset": preset, "width_mult": ctx.width, "via": via,
                    "images_per_second_total": sum(per), "images_per_second_each": per, "wall_seconds": wall}

        _checked(rec, f"{n}_at_once", pack, ctx, needs=15)


def _pack_through_ray(ctx: Context, rec: Recorder, counts: tuple[int, ...], preset: str, steps: int) -> None:
    """``n`` trainings at once as Ray tasks of ``1/n`` GPU (a logical GPU without CUDA) and ``cpus/n`` CPUs.

    Ray starts as a search starts it (``ray_session``): workers at normal priority (Ray's default, nice 15,
    starves them whenever anything else runs), and a watchdog that reaps it when the section is killed at its box.
    """
    import ray  # lazy: ray is a heavy optional package

    from nasattn.tune.session import ray_session

    cpus = os.cpu_count() or 1
    with ray_session(num_cpus=cpus, num_gpus=1):
        for n in counts:
            def pack(n: int = n) -> dict[str, Any]:
                task = ray.remote(num_gpus=1 / n, num_cpus=max(1, cpus // n))(_pack_task)
                t0 = time.time()
                refs = [task.remote(asdict(ctx), preset, steps, max(1, cpus // n)) for _ in range(n)]
                ready, pending = ray.wait(refs, num_returns=n, timeout=max(5.0, ctx.left() - 5))
                for ref in pending:
                    ray.cancel(ref, force=True)
                if pending:
                    return {"status": "error", "error": "killed at the section's time box", "finished": len(ready), "of": n}
                results = ray.get(ready)
                per = [r["images"] / r["seconds"] for r in results]
                return {"processes": n, "preset": preset, "width_mult": ctx.width, "via": f"ray tasks of {1 / n:g} GPU",
                        "gpu_ids": [r["gpu_ids"] for r in results], "niceness": [r["niceness"] for r in results],
                        "images_per_second_total": sum(per), "images_per_second_each": per, "wall_seconds": time.time() - t0}

            _checked(rec, f"{n}_at_once", pack, ctx, needs=15)


def _pack_task(ctx: dict[str, Any], preset: str, steps: int, threads: int) -> dict[str, Any]:
    """A Ray task: ``_pack_worker`` with ``threads`` torch threads; adds the GPU ids Ray gave it and its niceness."""
    import ray  # lazy: ray is a heavy optional package
    import torch

    torch.set_num_threads(threads)
    out = _pack_worker(Context(**ctx), preset, steps)
    return {**out, "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "niceness": os.nice(0)}


# ----------------------------------------------------------------------------------------- compile
def section_compile(ctx: Context) -> None:
    rec = ctx.recorder()
    _need("pydantic", PYDANTIC_HINT)
    preset = "baseline" if ctx.dry else "balanced"  # a dry run only shows the section works
    _checked(rec, f"{preset}/speed", lambda: _compiled_speed(ctx, preset), ctx, needs=30)
    _checked(rec, f"{preset}/explain", lambda: _explain(ctx, preset), ctx, needs=15)


def _model_and_batch(ctx: Context, preset: str):
    import torch

    from nasattn.models import build_model

    spec, _ = _spec_recipe(preset, ctx)
    torch.manual_seed(0)
    model = build_model(spec).to(ctx.device).train()
    x = torch.randn(ctx.batch, spec.in_channels, spec.input_size, spec.input_size, device=ctx.device)
    y = torch.randint(0, spec.num_classes, (ctx.batch,), device=ctx.device)
    return model, x, y


def _explain(ctx: Context, preset: str) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    for mode in ("train", "eval"):
        model, x, _ = _model_and_batch(ctx, preset)
        model.train(mode == "train")
        torch._dynamo.reset()
        ex = torch._dynamo.explain(model)(x)
        out[f"{mode}_graph_breaks"] = ex.graph_break_count
        out[f"{mode}_graphs"] = ex.graph_count
        out[f"{mode}_break_reasons"] = sorted({str(b.reason)[:160] for b in ex.break_reasons})[:10]
    out["status"] = "ok" if out["train_graph_breaks"] == 0 and out["eval_graph_breaks"] == 0 else "fail"
    return out


def _engine_epochs(ctx: Context, preset: str, data: Any, **recipe: Any) -> list[float]:
    """Seconds of each of two training epochs of ``ctx.steps`` steps through ``nasattn.engine.train`` (no evaluation)."""
    from nasattn.engine import train

    spec, rec = _spec_recipe(preset, ctx, epochs=2, **recipe)
    res = train(spec, rec, data, seed=0, device=ctx.device, progress=False, max_steps_per_epoch=ctx.steps, evaluate=False)
    return [float(r["train_images"]) / float(r["images_per_second"]) for r in res.history]


def _compiled_speed(ctx: Context, preset: str) -> dict[str, Any]:
    """The engine's own training, eager and with ``compile: true`` (its amp and layout: bf16 channels_last on CUDA).

    Epoch 1 compiles (its extra time is the compile time), epoch 2 is timed; graphs and recompiles are
    TorchDynamo's counters over both epochs. A dry run traces only (``compile_mode: trace-only``).
    """
    import torch
    import torch._dynamo.utils as dynamo_utils

    mode = "trace-only" if ctx.dry else "default"
    data = synthetic_dataset(max(80, 2 * ctx.batch * ctx.steps))  # 80: the smallest stratified split of 10 classes
    eager = _engine_epochs(ctx, preset, data)
    torch._dynamo.reset()
    dynamo_utils.counters.clear()
    compiled = _engine_epochs(ctx, preset, data, compile=True, compile_mode=mode)
    counters = dynamo_utils.counters
    recompiles = sum(counters["recompiles"].values()) if "recompiles" in counters else 0
    images = ctx.batch * ctx.steps
    return {"compile_mode": mode, "batch_size": ctx.batch, "width_mult": ctx.width, "steps": ctx.steps,
            "eager_images_per_second": images / eager[1], "compiled_images_per_second": images / compiled[1],
            "speedup": eager[1] / compiled[1], "compile_seconds": compiled[0] - compiled[1],
            "recompiles": recompiles, "unique_graphs": int(counters["stats"].get("unique_graphs", 0)),
            "status": "ok" if recompiles == 0 else "fail"}


# -------------------------------------------------------------------------------------------- data
def section_data(ctx: Context) -> None:
    rec = ctx.recorder()
    if not ctx.data:
        rec.add("training", "skipped", reason="no --data given")
        return
    _need("pydantic", PYDANTIC_HINT)

    def short() -> dict[str, Any]:
        from nasattn.data import load_dataset
        from nasattn.engine import train

        data = load_dataset(ctx.data, progress=False)
        spec, recipe = _spec_recipe("baseline", ctx, epochs=1 if ctx.dry else 2)
        if len(data.classes) != spec.num_classes:
            spec = spec.model_copy(update={"num_classes": len(data.classes)})
        res = train(spec, recipe, data, seed=0, device=ctx.device, progress=False,
                    max_steps_per_epoch=ctx.steps if ctx.dry else None)
        m = res.metrics
        return {"data": str(ctx.data), "images": len(data), "epochs": recipe.epochs, "test_accuracy": m.get("test_accuracy"),
                "train_seconds": m.get("train_seconds"), "width_mult": ctx.width}

    _checked(rec, "training", short, ctx, needs=20)


# ---------------------------------------------------------------------------------------- accuracy
TARGET = 0.972  # the paper's test accuracy of the balanced network on EuroSAT


def section_accuracy(ctx: Context) -> None:
    """Time to the paper's 97.2% test accuracy: the balanced preset with its own recipe on ``--data``."""
    rec = ctx.recorder()
    if not ctx.data:
        rec.add("time_to_97.2", "skipped", reason="no --data given: time to 97.2% needs real EuroSAT "
                                                  "(--data EuroSAT_RGB.zip)")
        return
    _need("pydantic", PYDANTIC_HINT)
    _checked(rec, "time_to_97.2", lambda: _time_to_accuracy(ctx), ctx, needs=30)


def _time_to_accuracy(ctx: Context) -> dict[str, Any]:
    import numpy as np

    from nasattn.bench.measure import time_to_accuracy
    from nasattn.data import IMAGENET_MEAN, IMAGENET_STD, load_dataset, split_dataset
    from nasattn.data.stats import cached_channel_stats
    from nasattn.recipe import Recipe
    from nasattn.engine import adapt_to_dataset
    from nasattn.models import build_model, count_flops
    from nasattn.presets import get_preset

    data = load_dataset(ctx.data, progress=False)
    if ctx.dry:  # a dry run only shows the section works: 100 images, one epoch, tiny width
        data = data.subset(np.linspace(0, len(data) - 1, min(100, len(data))).astype(np.int64))
    p = get_preset("balanced")
    spec = p.arch.scaled(ctx.width) if ctx.dry else p.arch
    recipe = Recipe.model_validate({**p.recipe_dict, **({"batch_size": ctx.batch, "epochs": 1} if ctx.dry else {})})
    spec, recipe, _ = adapt_to_dataset(spec, recipe, data.classes)
    splits = split_dataset(data.labels, recipe.split_ratios, recipe.split_seed, recipe.stratify)
    train_idx, test_idx = (np.asarray(s, dtype=np.int64) for s in (splits.train, splits.test))
    mean, std = ((list(IMAGENET_MEAN), list(IMAGENET_STD)) if recipe.normalize == "imagenet"
                 else cached_channel_stats(data, train_idx))
    flops = count_flops(build_model(spec), tuple(data.images.shape[1:]))
    r = time_to_accuracy(spec, recipe, data, TARGET, test_idx=test_idx, mean=mean, std=std, max_epochs=recipe.epochs,
                         device=ctx.device, time_box=max(10.0, ctx.left() - 60))
    rows = r["history"]
    images = sum(int(h["train_images"]) for h in rows)
    train_s = sum(h["train_images"] / h["images_per_second"] for h in rows if h["images_per_second"])
    best = max(rows, key=lambda h: h["test_accuracy"]) if rows else None
    return {
        "target": TARGET, "reached": r["reached"], "seconds_to_target": r["seconds"], "epochs_to_target": r["epochs"],
        "stopped": r["stopped"], "best_test_accuracy": best and best["test_accuracy"],
        "best_epoch": best and best["epoch"], "best_at_seconds": best and best["wall_seconds"],
        "epochs_run": len(rows), "max_epochs": recipe.epochs, "width_mult": ctx.width, "batch_size": recipe.batch_size,
        "images": len(data), "images_per_second": images / train_s if train_s else None,
        "forward_gflop_per_image": flops / 1e9,
        "achieved_tflops": 3 * flops * images / train_s / 1e12 if train_s else None,
        "tflops_note": "3 x forward FLOPs (torch.utils.flop_counter) x training images / training-loop seconds",
        "per_epoch": [{k: h[k] for k in ("epoch", "test_accuracy", "wall_seconds")} for h in rows],
    }


SECTION_FUNCS: dict[str, Callable[[Context], None]] = {
    "env": section_env, "correctness": section_correctness, "syncs": section_syncs, "speed": section_speed,
    "packing": section_packing, "compile": section_compile, "data": section_data,
    "accuracy": section_accuracy,
}


def main(argv: list[str]) -> int:
    name, arg = argv[0], json.loads(argv[1])
    arg["deadline"] = math.inf if arg.get("deadline") is None else arg["deadline"]
    ctx = Context(**arg)
    if name == "pack-worker":
        print(json.dumps(_pack_worker(ctx, argv[2], int(argv[3]))), flush=True)
        return 0
    ctx.section = name
    try:
        SECTION_FUNCS[name](ctx)
    except Skip as e:
        print(json.dumps({"skipped": str(e)}), flush=True)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
