"""The one Ray Tune function trainable shared by search and ablation, and ResultGrid -> CSV rows."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

from nasattn.schema import (
    DONE_MARKER, ERROR_FILE, RESTORED_VALUES, STATE_FILE, TUNE_BOOKKEEPING, TrialStatus, VAL_ACCURACY_LAST,
)
from nasattn.tune.home import Trip, node_label, trip
from nasattn.tune.placement import rendezvous, trial_device, write_placement
from nasattn.spec import ArchSpec
from nasattn.recipe import Recipe

# Keys of ``config`` that train_trial itself understands; everything else is passed through as "extra".
CONFIG_KEYS = (
    "arch", "recipe", "data", "seed", "device", "run_dir", "runs_root", "checkpoint_every", "checkpoint_budget",
    "subset", "width_mult", "max_steps_per_epoch", "measure_latency", "zero_cost_batch", "resume_from",
)
# Due checkpoints are skipped while writing them has taken more than this fraction of the trial's time
# (epochs of a second or less, where a checkpoint costs a large part of an epoch).
CHECKPOINT_BUDGET = 0.05


def scalar_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts (``alpha`` -> ``alpha/<name>``) and keep numbers, strings and bools."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(scalar_metrics(value, f"{name}/"))
        elif isinstance(value, bool) or isinstance(value, (int, str)) or value is None:
            out[name] = value
        elif isinstance(value, float):
            out[name] = value
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            out[name] = value.item()
        elif isinstance(value, (list, tuple)) and key == "per_class_accuracy":
            for i, v in enumerate(value):
                out[f"{name}/{i}"] = float(v)
    return out


def _set_threads() -> None:
    """Use as many torch threads as CPUs the trial was given (Ray sets OMP_NUM_THREADS likewise)."""
    import torch

    cpus = None
    try:
        from ray import tune  # lazy: ray is a heavy optional package

        pgf = tune.get_context().get_trial_resources()
        cpus = pgf.required_resources.get("CPU")
    except Exception:  # noqa: BLE001 - outside Tune or an older Ray: keep torch's default
        pass
    if cpus:
        torch.set_num_threads(max(1, int(math.floor(cpus))))


def measure_latency(model, input_size: int, in_channels: int, device: str = "cpu", min_run_time: float = 0.2) -> float:
    """Median seconds for one image (batch 1) through ``model`` in eval mode, on ``device``.

    Timed with ``torch.utils.benchmark.Timer`` (which synchronises CUDA around each measurement)
    with the process's torch thread count; the model is moved to ``device`` and left there.
    """
    import torch
    from torch.utils import benchmark

    was_training = model.training
    model = model.to(device).eval()
    x = torch.randn(1, in_channels, input_size, input_size, device=device)
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
        median = timer.blocked_autorange(min_run_time=min_run_time).median
    model.train(was_training)
    return float(median)


def resolve_run_dir(config: dict[str, Any]) -> Path | None:
    """``run_dir`` if given, else ``runs_root/<tune trial id>`` (None: write nothing)."""
    if config.get("run_dir"):
        return Path(config["run_dir"])
    if config.get("runs_root"):
        from ray import tune  # lazy: ray is a heavy optional package

        return Path(config["runs_root"]) / tune.get_context().get_trial_id()
    return None


def _load_data(config: dict[str, Any], seed: int, image_size: int):
    from nasattn.data import load_dataset  # lazy: keeps torch out of run-file parsing and the CLI's start

    dataset = load_dataset(config.get("data"), image_size=image_size, progress=False)
    subset = config.get("subset")
    if subset is not None and 0 < float(subset) < 1:
        from nasattn.data import stratified_subset  # lazy: keeps torch out of run-file parsing and the CLI's start

        dataset = dataset.subset(stratified_subset(dataset.labels, float(subset), seed=seed))
    return dataset


def train_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: train one ArchSpec with one Recipe, report per epoch, write a run.

    See :mod:`nasattn.tune` for the config contract and the metrics reported. Whatever fails (spec,
    data, build, training) fails the trial, and ``run_dir/ERROR`` keeps "ExcType: message (on node ...)"
    for the study record. On another node than the driver's (a :mod:`nasattn.tune.home` sink runs), the
    run folder is written on the trial's node and sent home when the trial ends.
    """
    home = resolve_run_dir(config)
    away = trip(home, _trial_name())
    folder = away.local if away is not None else home
    try:
        _train_trial(config, folder, away)
    except Exception as e:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / ERROR_FILE).write_text(error_line(e, node_label()) + "\n")
            if away is not None:  # the error reaches the output folder before Tune reports the trial failed
                with contextlib.suppress(Exception):  # a lost sink must not hide the trial's own error
                    away.send()
        raise


def read_error(run_dir: str | Path | None) -> str | None:
    """The ERROR file's text of the run folder ``run_dir`` (written where the trial ran, sent home from
    another node), or None when it has none."""
    path = Path(run_dir) / ERROR_FILE if run_dir else None
    if path is None or not path.is_file():
        return None
    return path.read_text(errors="replace").strip()[:2000]


def error_line(error: BaseException, node: str = "") -> str:
    """``ExcType: message``, with `` (on <node>)`` after the message's first line when the node is known."""
    first, nl, rest = f"{type(error).__name__}: {error}".partition("\n")
    return first + (f" (on {node})" if node else "") + nl + rest


def tune_error_line(error: BaseException) -> str:
    """:func:`error_line` of the trial's own exception inside the error Tune reports for it (Ray wraps
    it in a ``RayTaskError`` whose ``cause`` is the exception and ``ip`` the node it was raised on)."""
    cause = getattr(error, "cause", None)
    ip = getattr(error, "ip", None)
    exc = cause if isinstance(cause, BaseException) else error
    return error_line(exc, f"node {ip}" if ip else "").strip()


def _train_trial(config: dict[str, Any], folder: Path | None, away: Trip | None) -> None:
    """Train and report; the run is written into ``folder`` (its home, or ``away``'s scratch sent home)."""
    # torch, Ray and the torch-side floors are imported when a trial runs: nasattn.tune is imported by the
    # run-file parsers, which work without torch (lazy for ray and torch, the heavy optional packages)
    import torch
    from ray import tune  # lazy: ray is a heavy optional package

    from nasattn.engine import train  # lazy: keeps torch out of run-file parsing and the CLI's start

    t_start = time.perf_counter()
    _set_threads()
    seed = int(config.get("seed", 0))
    run_dir = resolve_run_dir(config)
    trial = _trial_name()

    # A trial that already wrote its run (e.g. re-run after a driver crash) only re-reports it.
    done = away.done if away is not None else None
    if done is None and folder is not None and (folder / DONE_MARKER).is_file():
        done = (folder / DONE_MARKER).read_text()
    if done is not None:
        tune.report(json.loads(done))
        return

    device, placement = trial_device(str(config.get("device") or "auto"), trial)
    placement.update(node=node_label(), sent_home=away is not None)  # sent_home: written on another node than the driver's
    write_placement(folder, placement)
    rendezvous(trial)

    spec, recipe, dataset = _trial_inputs(config, seed)
    forget_earlier_trials(recipe, device)
    torch.manual_seed(seed)
    model, static = _built_model(config, spec, dataset, device)
    resume_state = _resume_state(config)
    reporter = TrialReporter(config, static, last_epoch=recipe.epochs, t_start=t_start, resumed=resume_state is not None,
                             restored=restored_values(resume_state))
    result = train(
        spec, recipe, dataset, seed=seed, device=device, callbacks=(reporter,),
        progress=False, model=model, resume_state=resume_state,
        max_steps_per_epoch=config.get("max_steps_per_epoch"),
    )
    placement["ended"] = time.time()
    write_placement(folder, placement)
    final = _final_metrics(config, run_dir, folder, result, static)
    if away is not None:
        away.send()  # the run is home before Tune hears that it finished
    tune.report({**final, **reporter.take_restored()})


def forget_earlier_trials(recipe: Recipe, device: str) -> None:
    """Tune reuses a trial's process for the next trial: drop what an earlier trial left in it.

    With ``recipe.compile``, torch's compile caches (the earlier trials' graphs would count toward dynamo's
    recompile limit, past which it runs eager). On CUDA, the memory torch's allocator kept cached: trials
    packed on the same GPU run in other processes, which cannot use this one's cache.
    """
    import gc

    import torch

    if recipe.compile:
        torch.compiler.reset()
    if device.startswith("cuda"):
        gc.collect()  # tensors an earlier trial left in reference cycles
        torch.cuda.empty_cache()


def _trial_inputs(config: dict[str, Any], seed: int) -> tuple[Any, Any, Any]:
    """``(spec, recipe, dataset)`` of a trial's config, the spec and recipe adapted to the dataset's classes."""
    from nasattn.engine import adapt_to_dataset  # torch-side floor: imported when a trial runs

    spec = ArchSpec.from_dict(config["arch"], "trial arch")
    if config.get("width_mult") not in (None, 1, 1.0):
        spec = spec.scaled(float(config["width_mult"]))
    recipe = Recipe.model_validate(config.get("recipe") or {})
    dataset = _load_data(config, seed, spec.input_size)
    spec, recipe, notes = adapt_to_dataset(spec, recipe, dataset.classes)
    for note in notes:
        print(f"nasattn: {note}", flush=True)
    return spec, recipe, dataset


def _built_model(config: dict[str, Any], spec: Any, dataset: Any, device: str) -> tuple[Any, dict[str, Any]]:
    """The trial's model and its static metrics: its profile, latency, training-free scores, seed recipe."""
    from nasattn.engine.zero_cost import score_batch, zero_cost_scores  # torch-side floors: imported when a trial runs
    from nasattn.models import build_model, profile_model  # lazy: keeps torch out of run-file parsing and the CLI's start

    model = build_model(spec)
    prof = profile_model(model)
    static: dict[str, Any] = {k: prof[k] for k in ("params", "flops", "layers", "conv_layers") if k in prof}
    if config.get("measure_latency"):
        static["latency_ms"] = 1000 * measure_latency(model, spec.input_size, spec.in_channels, device)
    if int(config.get("zero_cost_batch", 64) or 0) > 0:  # training-free scores at initialisation (trials.csv zc_*)
        static.update(zero_cost_scores(model, *score_batch(dataset.images, dataset.labels, int(config.get("zero_cost_batch", 64)))))
    if (config.get("optuna") or {}).get("seed_recipe"):  # search seed trials: own or the study's recipe
        static["seed_recipe"] = config["optuna"]["seed_recipe"]
    return model, static


def restored_values(state: Any) -> dict[str, float]:
    """``{"<epoch>": val_accuracy}`` of the epochs a checkpoint's training state restored (``{}`` without one)."""
    rows = (state or {}).get("history") or []
    return {str(int(r["epoch"])): float(r[VAL_ACCURACY_LAST]) for r in rows if r.get(VAL_ACCURACY_LAST) is not None}


def _resume_state(config: dict[str, Any]) -> Any:
    """The training state to resume from: Tune's checkpoint of this trial, else ``resume_from``'s, else None."""
    from ray import tune  # lazy: ray is a heavy optional package

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            return _load_state(ckpt_dir)
    source = str(config.get("resume_from") or "")
    if "://" in source:  # on a storage URI (s3://...): fetched into a local folder first
        with tune.Checkpoint(source).as_directory() as ckpt_dir:
            return _load_state(ckpt_dir)
    if source:  # a resumed search: the checkpoint an earlier session of this trial left
        return _load_state(source)
    return None


class TrialReporter:
    """The per-epoch callback of a trial: reports each epoch but the last to Tune, with a checkpoint when due.

    A checkpoint is due every ``checkpoint_every`` epochs while writing them has taken at most
    ``checkpoint_budget`` of the trial's time (None: every due one). The first report of a fresh trial
    records ``time_to_first_epoch_s`` into ``static``.
    """

    def __init__(self, config: dict[str, Any], static: dict[str, Any], *, last_epoch: int, t_start: float, resumed: bool,
                 restored: dict[str, float] | None = None):
        self.static = static
        self.restored = dict(restored or {})
        self.last_epoch = last_epoch
        self.t_start = t_start
        self.resumed = resumed
        self.checkpoint_every = int(config.get("checkpoint_every") or 0)
        self.budget = config.get("checkpoint_budget", CHECKPOINT_BUDGET)
        self.start = time.perf_counter()
        self.checkpointing = 0.0

    def __call__(self, epoch: int, row: dict[str, Any], state: Any) -> None:
        from ray import tune  # lazy: ray is a heavy optional package

        if "time_to_first_epoch_s" not in self.static and not self.resumed:
            self.static["time_to_first_epoch_s"] = time.perf_counter() - self.t_start  # start-up + the first epoch
        if epoch >= self.last_epoch:
            return  # the final report (after testing and write_run) carries the last epoch
        metrics = {**scalar_metrics(row), **self.static, "epoch": epoch, "final": False, **self.take_restored()}
        if self._due(epoch):
            self._report_with_checkpoint(metrics, state)
        else:
            tune.report(metrics)

    def take_restored(self) -> dict[str, Any]:
        """``{RESTORED_VALUES: ...}`` for the first report after a resume from a checkpoint, then ``{}``."""
        restored, self.restored = self.restored, {}
        return {RESTORED_VALUES: restored} if restored else {}

    def _due(self, epoch: int) -> bool:
        due = bool(self.checkpoint_every) and epoch % self.checkpoint_every == 0
        if due and self.budget is not None:
            due = self.checkpointing <= self.budget * (time.perf_counter() - self.start)
        return due

    def _report_with_checkpoint(self, metrics: dict[str, Any], state: Any) -> None:
        import torch
        from ray import tune  # lazy: ray is a heavy optional package

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(state.checkpoint(), os.path.join(tmp, STATE_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        self.checkpointing += time.perf_counter() - t0


def _final_metrics(config: dict[str, Any], run_dir: Path | None, folder: Path | None, result: Any,
                   static: dict[str, Any]) -> dict[str, Any]:
    """The final report of a trial (the last epoch, the static metrics, the test metrics); writes the run and
    DONE into ``folder`` (where it is written; ``run_dir``: where it lives, the folder the report names)."""
    from nasattn.engine import write_run  # torch-side floor: imported when a trial runs

    last_row = result.history[-1] if result.history else {}
    final = {**scalar_metrics(last_row), **static, **scalar_metrics(result.metrics)}
    final.update(epoch=int(last_row.get("epoch", result.metrics.get("epochs_run", 0)) or 0), final=True)
    if VAL_ACCURACY_LAST in last_row:  # metrics.json holds the best epoch's (VAL_ACCURACY_BEST); Tune ranks the last
        final[VAL_ACCURACY_LAST] = last_row[VAL_ACCURACY_LAST]
    if run_dir is not None and folder is not None:
        extra = {k: v for k, v in config.items() if k not in CONFIG_KEYS}
        result.metrics.update({k: v for k, v in extra.items() if isinstance(v, (int, float, str, bool))})
        write_run(folder, result)
        final["run_dir"] = str(run_dir)
        (folder / DONE_MARKER).write_text(json.dumps(final, default=str))
    return final


def _load_state(folder: str) -> Any:
    """The training state in a checkpoint folder (tensors and plain values only: ``weights_only``), or None."""
    import torch

    path = os.path.join(folder, STATE_FILE)
    return torch.load(path, map_location="cpu", weights_only=True) if os.path.isfile(path) else None


def _trial_name() -> str:
    """The Tune trial id (``"local"`` outside Tune)."""
    try:
        from ray import tune  # lazy: ray is a heavy optional package

        return str(tune.get_context().get_trial_id() or "local")
    except Exception:  # noqa: BLE001 - outside a Tune session
        return "local"


# --------------------------------------------------------------------------- results -> rows
def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def trial_row(trial_id: str, status: str, config: dict[str, Any], metrics: dict[str, Any] | None,
              error: str | None = None, path: str | None = None) -> dict[str, Any]:
    """One flat CSV row: id, status (COMPLETE / STOPPED / ERROR / ...), config.*, metrics, duration, error."""
    metrics = dict(metrics or {})
    row: dict[str, Any] = {"trial_id": trial_id, "status": status}
    row.update({f"config.{k}": v for k, v in flatten(config or {}).items()})
    row["epochs"] = metrics.get("epoch")
    row["duration_s"] = metrics.get("time_total_s")
    row.update({k: v for k, v in metrics.items() if k not in TUNE_BOOKKEEPING and not isinstance(v, dict)})
    row["error"] = error
    row["path"] = path
    return row


def _status_of(metrics: dict[str, Any], error: Any) -> str:
    if error is not None:
        return TrialStatus.ERROR
    if metrics.get("final"):
        return TrialStatus.COMPLETE
    return TrialStatus.STOPPED if metrics else TrialStatus.PENDING


def result_rows(results: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows for a CSV from a Ray ``ResultGrid`` (or any iterable of ``ray.tune.Result``).

    ``status`` is COMPLETE (trained to the end), STOPPED (stopped early by the scheduler) or ERROR.
    """
    rows = []
    for res in results:
        metrics = dict(res.metrics or {})
        error = res.error
        err = None if error is None else tune_error_line(error)
        trial_id = metrics.get("trial_id") or (Path(res.path).name if res.path else "")
        rows.append(trial_row(trial_id, _status_of(metrics, error), res.config or metrics.get("config", {}),
                              metrics, err, res.path))
    return rows


def write_rows_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows (union of columns, first-seen order) to ``path`` with pandas."""
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path
