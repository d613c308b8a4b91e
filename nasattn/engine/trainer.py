"""``train()``: one architecture, one recipe, one seed -> a TrainResult with every metric of the paper.

Fast data path: the whole uint8 dataset is moved to the device once; every epoch draws a seeded
permutation of the training indices and slices batches from it; augmentation and normalisation run
on the device, batch by batch. No DataLoader, no worker processes.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.deterministic
from torch import nn

import nasattn
from nasattn.blocks.fusion import LearnableAlpha
from nasattn.config import NasattnError
from nasattn.data import (IMAGENET_MEAN, IMAGENET_STD, compute_class_weights, make_eval_transform, make_train_transform, split_dataset,
                          tta_views)
from nasattn.data.stats import cached_channel_stats
from nasattn.data.stats import channel_stats as channel_stats  # re-exported: callers import it from here
from nasattn.engine.decay import DecayOnly, param_groups
from nasattn.engine.metrics import classification_metrics
from nasattn.recipe import Recipe
from nasattn.engine.schedule import LRSchedule
from nasattn.models import build_model, profile_model
from nasattn.schema import ExitCode

if TYPE_CHECKING:
    from nasattn.data import ImageDataset
    from nasattn.spec import ArchSpec


class StopTraining(Exception):
    """Raised by an epoch callback to end training after the current epoch (a result is still produced)."""


class TrainingDivergedError(NasattnError, RuntimeError):
    """The training loss became NaN or infinite."""

    exit_code = ExitCode.FAILED


EpochCallback = Callable[[int, dict[str, Any], "TrainState"], None]


def _to_cpu(obj: Any) -> Any:
    """A deep copy of ``obj`` with every tensor cloned to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_cpu(v) for v in obj)
    return obj


def _numpy_rng_state() -> tuple[Any, ...]:
    """numpy's global RNG state with its key array as a tensor (so ``torch.load(weights_only=True)`` works)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def _set_numpy_rng_state(state: tuple[Any, ...]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached))


@dataclass
class TrainState:
    """Everything needed to continue training.

    ``checkpoint()`` snapshots it as plain containers of CPU tensors and numbers (``torch.save`` it;
    ``torch.load(..., weights_only=True)`` reads it back); ``train(resume_state=...)`` continues from it.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler
    order_generator: torch.Generator
    aug_generator: torch.Generator
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float = -1.0
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    decay_only: DecayOnly | None = None

    def checkpoint(self) -> dict[str, Any]:
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_rng_state(),
            "python": random.getstate(),
            "order": self.order_generator.get_state(),
            "aug": self.aug_generator.get_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return _to_cpu({
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "history": [dict(r) for r in self.history],
            "best_val": self.best_val,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "best_weights": self.best_weights,
            "bad_epochs": self.bad_epochs,
            "decay_only": self.decay_only.state_dict() if self.decay_only is not None else None,
            "rng": rng,
        })

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Load a ``checkpoint()`` dict: weights, optimiser, schedule, scaler, bookkeeping and RNG states."""
        device = next(self.model.parameters()).device
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch = int(ckpt["epoch"])
        self.history = [dict(r) for r in ckpt["history"]]
        self.best_val = float(ckpt["best_val"])
        self.best_val_loss = float(ckpt.get("best_val_loss", float("inf")))
        self.best_epoch = int(ckpt["best_epoch"])
        bw = ckpt.get("best_weights")
        self.best_weights = {k: v.to(device) for k, v in bw.items()} if bw is not None else None
        self.bad_epochs = int(ckpt["bad_epochs"])
        if self.decay_only is not None and ckpt.get("decay_only"):
            self.decay_only.load_state_dict(ckpt["decay_only"])
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        _set_numpy_rng_state(rng["numpy"])
        random.setstate(rng["python"])
        self.order_generator.set_state(rng["order"])
        self.aug_generator.set_state(rng["aug"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


@dataclass
class TrainResult:
    """Metrics (JSON-able dict), per-epoch history, the best-val model on the CPU, and test predictions."""

    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    model: nn.Module
    spec: ArchSpec | None
    recipe: Recipe
    predictions: dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------------- helpers
def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where bf16 autocast pays off.

    torch's public check (``torch.backends.cpu.get_cpu_capability()``) names the vector ISA it dispatches
    to (AVX512, AVX2, ...) but not bf16, so the bf16 flags come from the kernel's ``/proc/cpuinfo``
    (``cpuinfo``: its text, for tests); without that file (not Linux) the answer is no.
    """
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = {w for line in cpuinfo.splitlines() if line.startswith("flags") for w in line.split(":", 1)[-1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _amp_dtype(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    if recipe.amp == "auto":
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_native_bf16() else None
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[recipe.amp]


def use_channels_last(choice: str, device: torch.device, amp_dtype: torch.dtype | None) -> bool:
    """Whether to train in channels_last: ``auto`` = on CUDA, and on a CPU under bf16 autocast.

    On the CPU, bf16 convolutions are faster in channels_last (measured in reports/bench.md). In
    float32, torch's CPU backward of a stride-2 1x1 convolution in channels_last corrupts the heap
    (a segfault in the residual shortcuts; reports/bench.md), so float32 trains NCHW.
    """
    if choice == "off":
        return False
    if device.type == "cpu" and amp_dtype != torch.bfloat16:
        if choice == "on":
            warnings.warn("channels_last is used on the CPU only under amp: bf16 (in float32 a torch bug crashes "
                          "its backward); training in NCHW")
        return False
    return choice == "on" or device.type in ("cuda", "cpu")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _backend_flags(device: torch.device, amp_dtype: torch.dtype | None = None) -> Iterator[None]:
    """Backend settings for one training run; the previous settings are restored after.

    CPU: deterministic algorithms. CUDA: cuDNN autotuning (``cudnn.benchmark``: the input size is fixed
    for a run and every training batch has the recipe's batch size, so training autotunes one shape;
    evaluation's last, partial batch adds at most one more); with ``amp: off``, float32 matmuls and convolutions use TF32
    (``torch.set_float32_matmul_precision("high")``; cuDNN convolutions use TF32 by torch's default).
    """
    det, det_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    bench = torch.backends.cudnn.benchmark
    fill = torch.utils.deterministic.fill_uninitialized_memory
    matmul = torch.get_float32_matmul_precision()
    try:
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.utils.deterministic.fill_uninitialized_memory = False  # NaN-filling torch.empty is slower
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            if amp_dtype is None:
                torch.set_float32_matmul_precision("high")
        yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch.utils.deterministic.fill_uninitialized_memory = fill
        torch.backends.cudnn.benchmark = bench
        torch.set_float32_matmul_precision(matmul)


def _class_weights(recipe: Recipe, train_labels: torch.Tensor, classes: Sequence[str]) -> torch.Tensor | None:
    k = len(classes)
    if isinstance(recipe.class_weights, list):
        if len(recipe.class_weights) != k:
            raise ValueError(
                f"recipe.class_weights has {len(recipe.class_weights)} entries but the dataset has {k} classes "
                f"({', '.join(classes)}); give one weight per class, in this order"
            )
        return torch.tensor(recipe.class_weights, dtype=torch.float32)
    if recipe.class_weights == "none":
        return None
    w = compute_class_weights(train_labels, k, mode=recipe.class_weights, beta=recipe.effective_beta)
    return None if w is None else torch.as_tensor(w, dtype=torch.float32)


def _optimizer(model: nn.Module, recipe: Recipe, device: torch.device) -> torch.optim.Optimizer:
    params = param_groups(model, recipe)
    speed: dict[str, bool] = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
            nesterov=recipe.nesterov and recipe.momentum > 0, **speed,
        )
    cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **speed)


def compile_model(model: nn.Module, recipe: Recipe, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` itself, or ``torch.compile(model)`` in the recipe's ``compile_mode`` when ``recipe.compile``.

    ``reduce-overhead`` (CUDA graphs) needs CUDA: elsewhere it compiles in mode ``default`` and warns.
    ``trace-only`` compiles with backend ``eager`` (TorchDynamo graphs, no generated code).
    """
    if not recipe.compile:
        return model
    mode = recipe.compile_mode
    if mode == "trace-only":
        return torch.compile(model, backend="eager")
    if mode == "reduce-overhead" and device.type != "cuda":
        warnings.warn(f"compile_mode reduce-overhead captures CUDA graphs and needs CUDA; on {device.type} the model "
                      "is compiled in mode default", stacklevel=2)
        mode = "default"
    return torch.compile(model, mode=mode)


def _alpha_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The raw ``a`` of every learnable-alpha fusion block, by module name (the names of ``fusion_alphas``)."""
    return {name: m.alpha for name, m in model.named_modules() if isinstance(m, LearnableAlpha)}


def _alpha_values(params: dict[str, nn.Parameter]) -> dict[str, float]:
    """``s = sigmoid(a)`` of every parameter, read from the device in one transfer."""
    if not params:
        return {}
    values = torch.stack([p.detach().float().reshape(()) for p in params.values()]).sigmoid().tolist()
    return dict(zip(params, values))


def model_profile(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Parameters, FLOPs and layer counts of ``model`` (FLOPs and layers None when it cannot be traced)."""
    fallback = {"params": sum(p.numel() for p in model.parameters()), "flops": None, "layers": None, "conv_layers": None}
    try:

        prof = profile_model(model, input_shape=input_shape)
    except Exception:  # noqa: BLE001 - profiling is informative only; a model it cannot trace still trains
        return fallback
    return {k: prof.get(k, fallback[k]) for k in fallback}


class _Progress:
    """A rich progress bar over all training steps (a no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, completed: int) -> None:
        self.bar = None
        self.enabled = enabled
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            )
            self.task = self.bar.add_task("train", total=total, completed=completed, info="")
            self.val = ""

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def step(self, epoch: int, epochs: int, loss: float | None) -> None:
        if self.bar is not None:
            info = f"loss {loss:.4f}{self.val}" if loss is not None else None
            self.bar.update(self.task, advance=1, description=f"epoch {epoch}/{epochs}", **({"info": info} if info else {}))

    def epoch_end(self, row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.val = f" | val acc {row['val_accuracy']:.4f} (epoch {row['epoch']})"
            self.bar.update(self.task, info=f"loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}{self.val}")


@dataclass
class _Ctx:
    """The per-run objects that training, evaluation and the result share."""

    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    images: torch.Tensor
    labels: torch.Tensor
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    eval_tf: Callable[[torch.Tensor], torch.Tensor]
    train_tf: Callable[..., torch.Tensor]
    criterion: nn.Module
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    test_idx: torch.Tensor
    splits: tuple[np.ndarray, np.ndarray, np.ndarray]
    steps: int
    mean: list[float]
    std: list[float]
    class_weights: torch.Tensor | None
    alpha_params: dict[str, nn.Parameter]
    cuda_graphs: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def _predict(ctx: _Ctx, idx: torch.Tensor, batch_size: int, tta: bool, compiled: bool) -> torch.Tensor:
    """Softmax probabilities [len(idx), K] (float32, on the device); TTA averages them over ``tta_views``."""
    ctx.model.eval()
    out = []
    grad_ctx = torch.no_grad() if compiled else torch.inference_mode()
    try:
        with grad_ctx:
            for i in range(0, len(idx), batch_size):
                x = ctx.eval_tf(ctx.images[idx[i:i + batch_size]])
                views = tta_views(x) if tta else [x]
                probs = None
                for v in views:
                    with ctx.autocast():
                        logits = ctx.forward(ctx.layout(v))
                    p = logits.float().softmax(dim=1)
                    probs = p if probs is None else probs + p
                out.append(probs / len(views))
    finally:
        ctx.model.train()
    return torch.cat(out) if out else torch.zeros(0, 0, device=ctx.device)


def _nll(probs: torch.Tensor, y: torch.Tensor) -> float:
    return float(F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="mean")) if len(y) else float("nan")


# ---------------------------------------------------------------------------------------------- setup
def _check_inputs(spec: ArchSpec | None, data: ImageDataset, device: str, model: nn.Module | None) -> torch.device:
    dev = resolve_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if model is None and spec is None:
        raise ValueError("train() needs an ArchSpec or a prebuilt model")
    k = len(data.classes)
    if spec is not None and getattr(spec, "num_classes", k) != k:
        raise ValueError(
            f"the architecture has {spec.num_classes} outputs but the dataset has {k} classes; "
            f"set num_classes: {k} in the spec (nasattn.engine.adapt_to_dataset does it)"
        )
    images = torch.as_tensor(data.images)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"data.images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    return dev


def _setup(spec: ArchSpec | None, recipe: Recipe, data: ImageDataset, seed: int, dev: torch.device,
           model: nn.Module | None, max_steps_per_epoch: int | None) -> tuple[_Ctx, TrainState]:
    """Model, split, normalisation, loss, optimiser, schedule and generators of one run (seeded)."""
    images_cpu, labels_cpu = torch.as_tensor(data.images), torch.as_tensor(data.labels, dtype=torch.int64)
    _seed_everything(seed)
    if model is None:
        model = build_model(spec)
    # Training's random stream starts from the seed whether the model was built here or by the
    # caller (a Tune trial builds and profiles it first): the same seed gives the same run.
    _seed_everything(seed)
    splits = split_dataset(labels_cpu, recipe.split_ratios, recipe.split_seed, recipe.stratify)
    train_np, val_np, test_np = (np.asarray(s, dtype=np.int64) for s in (splits.train, splits.val, splits.test))
    if len(train_np) < 2 or len(val_np) < 1 or len(test_np) < 1:
        raise ValueError(
            f"split {list(recipe.split_ratios)} of {len(labels_cpu)} images leaves "
            f"{len(train_np)}/{len(val_np)}/{len(test_np)} train/val/test images; need >= 2/1/1"
        )
    weights = _class_weights(recipe, labels_cpu[train_np], list(data.classes))
    if recipe.normalize == "imagenet":
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    else:
        mean, std = cached_channel_stats(data, train_np)

    amp_dtype = _amp_dtype(recipe, dev)
    channels_last = use_channels_last(recipe.channels_last, dev, amp_dtype)
    model = model.to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    n_train, bs = len(train_np), recipe.batch_size
    steps = max(1, n_train // bs)  # whole batches only: the last partial one is dropped (see train())
    if max_steps_per_epoch is not None:
        steps = max(1, min(steps, max_steps_per_epoch))
    ctx = _Ctx(
        model=model, forward=compile_model(model, recipe, dev),
        images=images_cpu.to(dev), labels=labels_cpu.to(dev), device=dev, amp_dtype=amp_dtype,
        channels_last=channels_last, eval_tf=make_eval_transform(mean, std),
        train_tf=make_train_transform(recipe.augment, mean, std, crop_pad=recipe.crop_pad),
        criterion=nn.CrossEntropyLoss(weight=None if weights is None else weights.to(dev),
                                      label_smoothing=recipe.label_smoothing),
        train_idx=torch.as_tensor(train_np, device=dev), val_idx=torch.as_tensor(val_np, device=dev),
        test_idx=torch.as_tensor(test_np, device=dev), splits=(train_np, val_np, test_np), steps=steps,
        mean=mean, std=std, class_weights=weights, alpha_params=_alpha_parameters(model),
        cuda_graphs=recipe.compile and recipe.compile_mode == "reduce-overhead" and dev.type == "cuda",
    )
    optimizer = _optimizer(model, recipe, dev)
    group_wd = {id(p): float(g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    alphas = ctx.alpha_params
    raw = torch.stack([p.detach().float().reshape(()) for p in alphas.values()]).tolist() if alphas else []
    state = TrainState(
        model=model, optimizer=optimizer, schedule=LRSchedule(optimizer, recipe, steps),
        scaler=torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16),
        order_generator=torch.Generator().manual_seed(seed),
        aug_generator=torch.Generator(device=dev).manual_seed(seed + 1),
        decay_only=DecayOnly.for_recipe(recipe, dict(zip(alphas, raw)), {k: group_wd[id(p)] for k, p in alphas.items()}),
    )
    return ctx, state


# ---------------------------------------------------------------------------------------------- epochs
def train_one_epoch(ctx: _Ctx, state: TrainState, recipe: Recipe, epoch: int, bar: _Progress) -> dict[str, Any]:
    """Train one epoch; returns its training columns of the history row.

    Loss and accuracy are accumulated on the device and read once, at the end of the epoch; with the
    progress bar on, the loss is read every step on the CPU and every 16th step on CUDA. A non-finite
    loss raises ``TrainingDivergedError`` naming its first step (at the next read).
    """
    model, optimizer, dev = ctx.model, state.optimizer, ctx.device
    steps, bs = ctx.steps, recipe.batch_size
    check_every = (1 if dev.type == "cpu" else 16) if bar.enabled else steps
    t_start = time.perf_counter()
    lr = float(optimizer.param_groups[0]["lr"])
    perm = ctx.train_idx[torch.randperm(len(ctx.train_idx), generator=state.order_generator).to(dev)]
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    first_bad = torch.full((), -1, dtype=torch.long, device=dev)
    seen = 0
    model.train()
    mark_step = ctx.cuda_graphs and torch.compiler.cudagraph_mark_step_begin
    for step in range(steps):
        if mark_step:
            mark_step()  # a new iteration: the previous step's CUDA-graph outputs may be overwritten
        idx = perm[step * bs:(step + 1) * bs]
        x = ctx.layout(ctx.train_tf(ctx.images[idx], state.aug_generator))
        y = ctx.labels[idx]
        with ctx.autocast():
            logits = ctx.forward(x)
            loss = ctx.criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        if recipe.grad_clip is not None:
            state.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip, foreach=True)
        step_lr = float(optimizer.param_groups[0]["lr"])
        state.scaler.step(optimizer)
        state.scaler.update()
        if state.decay_only is not None:
            state.decay_only.step(step_lr)
        state.schedule.step_batch()
        loss_d = loss.detach()
        first_bad = torch.where(~torch.isfinite(loss_d) & (first_bad < 0), step + 1, first_bad)
        loss_sum += loss_d * len(idx)
        correct += (logits.detach().argmax(dim=1) == y).sum()
        seen += len(idx)
        if step == steps - 1 or (step + 1) % check_every == 0:
            bad = int(first_bad)
            if bad >= 0:
                raise TrainingDivergedError(f"non-finite training loss at epoch {epoch}, step {bad}/{steps} (lr {lr:.3g})")
            bar.step(epoch, recipe.epochs, float(loss_d) if bar.enabled else None)
        else:
            bar.step(epoch, recipe.epochs, None)
    train_loss, train_correct = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()
    seconds = time.perf_counter() - t_start
    return {
        "epoch": epoch, "train_loss": train_loss / seen, "train_accuracy": train_correct / seen, "lr": lr,
        "images_per_second": seen / seconds if seconds > 0 else float("nan"), "train_images": seen,
    }


def validate(ctx: _Ctx, recipe: Recipe) -> tuple[float, float]:
    """Accuracy and NLL of the current model on the validation split."""
    probs = _predict(ctx, ctx.val_idx, recipe.eval_batch_size, False, recipe.compile)
    y = ctx.labels[ctx.val_idx]
    return float((probs.argmax(dim=1) == y).float().mean()), _nll(probs, y)


def _update_best(state: TrainState, epoch: int, val_acc: float, val_loss: float, keep_weights: bool) -> None:
    if val_acc > state.best_val or (val_acc == state.best_val and val_loss < state.best_val_loss) or not keep_weights:
        state.best_val, state.best_val_loss, state.best_epoch = val_acc, val_loss, epoch
        if keep_weights:
            state.best_weights = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        state.bad_epochs = 0
    else:
        state.bad_epochs += 1


# ---------------------------------------------------------------------------------------------- train
def train(
    spec: ArchSpec | None,
    recipe: Recipe,
    data: ImageDataset,
    *,
    seed: int = 0,
    device: str = "auto",
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = True,
    model: nn.Module | None = None,
    resume_state: dict[str, Any] | None = None,
    max_steps_per_epoch: int | None = None,
    evaluate: bool = True,
) -> TrainResult:
    """Train ``spec`` (or the given ``model``) on ``data`` with ``recipe``; evaluate the best-val weights on test.

    ``data`` is an ``ImageDataset`` (uint8 ``images`` [N, C, H, W], int64 ``labels``, ``classes``).
    The split is ``split_dataset(labels, recipe.split_ratios, recipe.split_seed, recipe.stratify)``.
    Each epoch calls ``cb(epoch, row, state)`` for every callback; a callback may raise ``StopTraining``.
    The best epoch is the highest val accuracy, ties broken by lower val loss; its weights are always
    restored before testing (``early_stopping_patience``: stop after that many epochs without a new
    best). ``model`` (optional) is trained in place instead of ``build_model(spec)``.
    ``resume_state`` is a ``TrainState.checkpoint()`` of the same spec/recipe/seed; training continues
    from the epoch after it. ``max_steps_per_epoch`` caps the training batches per epoch (benchmarks).
    Every training step takes ``batch_size`` images: each epoch's last ``len(train) % batch_size``
    images of its shuffled order are left out (a fresh order each epoch, so every image is trained on),
    which keeps one batch shape for torch.compile and cuDNN autotuning; a training split smaller than
    one batch is one step of all of it. Validation and test use every image.
    ``evaluate=False`` skips validation, testing and profiling (throughput measurements): the val
    columns are NaN, the last epoch counts as the best, and the test metrics are None.
    History rows hold ``alpha/<block>`` (the learned ``sigmoid(a)``) and ``alpha_decay_only/<block>``
    (where weight decay alone would have moved it, see ``nasattn.engine.decay``).
    Raises ``TrainingDivergedError`` on a non-finite loss; CUDA OOM and KeyboardInterrupt propagate.
    """
    dev = _check_inputs(spec, data, device, model)
    with _backend_flags(dev, _amp_dtype(recipe, dev)):
        ctx, state = _setup(spec, recipe, data, seed, dev, model, max_steps_per_epoch)
        if resume_state is not None:
            state.restore(resume_state)
        stop_reason = "completed"
        if recipe.early_stopping_patience and state.bad_epochs >= recipe.early_stopping_patience:
            stop_reason = "early_stopping"

        with _Progress(progress, recipe.epochs * ctx.steps, state.epoch * ctx.steps) as bar:
            epoch = state.epoch
            while stop_reason == "completed" and epoch < recipe.epochs:
                epoch += 1
                if hasattr(ctx.model, "set_epoch"):
                    ctx.model.set_epoch(epoch)
                t_start = time.perf_counter()
                row = train_one_epoch(ctx, state, recipe, epoch, bar)
                val_acc, val_loss = validate(ctx, recipe) if evaluate else (float("nan"), float("nan"))
                state.schedule.step_epoch(epoch, val_acc)
                _update_best(state, epoch, val_acc, val_loss, keep_weights=evaluate)
                row = {
                    "epoch": epoch, "train_loss": row["train_loss"], "train_accuracy": row["train_accuracy"],
                    "val_loss": val_loss, "val_accuracy": val_acc, "lr": row["lr"],
                    "epoch_seconds": time.perf_counter() - t_start,
                    "images_per_second": row["images_per_second"], "train_images": row["train_images"],
                }
                row.update({f"alpha/{k}": v for k, v in _alpha_values(ctx.alpha_params).items()})
                if state.decay_only is not None:
                    row.update({f"alpha_decay_only/{k}": v for k, v in state.decay_only.sigmoid().items()})
                state.history.append(row)
                state.epoch = epoch
                bar.epoch_end(row)
                try:
                    for cb in callbacks:
                        cb(epoch, row, state)
                except StopTraining:
                    stop_reason = "callback"
                    break
                if recipe.early_stopping_patience and state.bad_epochs >= recipe.early_stopping_patience:
                    stop_reason = "early_stopping"

        if state.best_weights is not None:
            ctx.model.load_state_dict(state.best_weights)
        test_probs = _predict(ctx, ctx.test_idx, recipe.eval_batch_size, recipe.tta, recipe.compile) if evaluate else None
    return _result(ctx, state, spec, recipe, data, seed, stop_reason, test_probs)


def _test_metrics(ctx: _Ctx, probs: torch.Tensor | None, classes: list[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Test metrics and saved predictions (empty when the run was not evaluated)."""
    test_np = ctx.splits[2]
    y_np = ctx.labels[ctx.test_idx].cpu().numpy().astype(np.int64)
    if probs is None:
        empty = np.zeros(0, dtype=np.int64)
        predictions = {"index": empty, "label": empty, "pred": empty, "confidence": np.zeros(0, dtype=np.float32),
                       "probs": np.zeros((0, len(classes)), dtype=np.float32)}
        return {"test_accuracy": None, "test_loss": None}, predictions
    probs_np = probs.cpu().numpy()
    preds_np = probs_np.argmax(axis=1)
    cls_metrics = classification_metrics(y_np, preds_np, probs_np, classes)
    metrics = {"test_accuracy": cls_metrics.pop("accuracy"), "test_loss": _nll(probs.cpu(), torch.from_numpy(y_np))}
    metrics.update(cls_metrics)
    predictions = {
        "index": test_np,
        "label": y_np,
        "pred": preds_np.astype(np.int64),
        "confidence": probs_np.max(axis=1) if len(probs_np) else np.zeros(0, dtype=np.float32),
        "probs": probs_np,
    }
    return metrics, predictions


def _result(ctx: _Ctx, state: TrainState, spec: ArchSpec | None, recipe: Recipe, data: ImageDataset, seed: int,
            stop_reason: str, test_probs: torch.Tensor | None) -> TrainResult:
    """The TrainResult of a finished run: test metrics, run facts and the model on the CPU."""
    classes = list(data.classes)
    metrics, predictions = _test_metrics(ctx, test_probs, classes)
    model = ctx.model.to("cpu", memory_format=torch.contiguous_format)
    history = state.history
    train_secs = sum(r["epoch_seconds"] for r in history)
    train_imgs = sum(r.get("train_images", 0) for r in history)
    train_only = sum(r["train_images"] / r["images_per_second"] for r in history if r.get("images_per_second"))
    best_row = next((r for r in history if r["epoch"] == state.best_epoch), None)
    if best_row is not None:
        decay_only = {k.split("/", 1)[1]: v for k, v in best_row.items() if k.startswith("alpha_decay_only/")}
    else:
        decay_only = {k: 1.0 / (1.0 + math.exp(-v)) for k, v in (state.decay_only.initial if state.decay_only else {}).items()}
    evaluated = test_probs is not None
    amp_names = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}
    n_train, n_val, n_test = (len(s) for s in ctx.splits)
    metrics.update({
        "val_accuracy": state.best_val if state.best_epoch and evaluated else None,
        "val_loss": state.best_val_loss if state.best_epoch and evaluated else None,
        "best_epoch": state.best_epoch,
        "epochs_run": len(history),
        "max_epochs": recipe.epochs,
        "stop_reason": stop_reason,
        "train_seconds": train_secs,
        "images_per_second": train_imgs / train_only if train_only > 0 else None,
        "alpha": _alpha_values(_alpha_parameters(model)),
        "alpha_decay_only": decay_only,
        **(model_profile(model, tuple(ctx.images.shape[1:])) if evaluated
           else {"params": sum(p.numel() for p in model.parameters()), "flops": None, "layers": None, "conv_layers": None}),
        "seed": seed,
        "device": _device_name(ctx.device),
        "torch_threads": torch.get_num_threads(),
        "amp": amp_names[ctx.amp_dtype],
        "channels_last": ctx.channels_last,
        "compiled": recipe.compile,
        "tta": recipe.tta,
        "n_train": n_train, "n_val": n_val, "n_test": n_test,
        "dataset": getattr(data, "source", None),
        "dataset_fingerprint": getattr(data, "fingerprint", None),
        "normalization": {"mean": ctx.mean, "std": ctx.std},
        "class_weights": None if ctx.class_weights is None else ctx.class_weights.tolist(),
        "torch_version": torch.__version__,
        "nasattn_version": nasattn.__version__,
    })
    return TrainResult(metrics=metrics, history=history, model=model, spec=spec, recipe=recipe, predictions=predictions)
