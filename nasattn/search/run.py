"""Running a study: Ray Tune + Optuna, resumable, writing trials.csv, best/, study.db and report.html."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasattn.config import ConfigError, to_yaml
from nasattn.search.study import LoadedStudy
from nasattn.tune.resources import preflight, start_ray
from nasattn.tune.trainable import CHECKPOINT_BUDGET

log = logging.getLogger("nasattn.search")
EXPERIMENT = "tune"  # Tune's experiment folder inside the output folder


class SearchFailed(RuntimeError):
    """Every trial of the search failed; ``str()`` shows the first error."""


@dataclass
class SearchResult:
    output: Path
    trials_csv: Path
    best_dir: Path | None
    report: Path | None
    counts: dict[str, int] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    wall_s: float = 0.0
    ray_start_s: float = 0.0
    rejected: int = 0
    report_error: str | None = None
    interrupted: int | None = None  # the signal that stopped the search (SIGINT, SIGTERM), if any
    checkpointed: int = 0  # unfinished trials with a checkpoint to resume from


def _say(console: Any, msg: str) -> None:
    if console is not None:
        console.print(msg, highlight=False, soft_wrap=True)
    else:
        log.info(msg)


def _study_name(loaded: LoadedStudy) -> str:
    return loaded.study.study_name or loaded.study.name


def _directions(loaded: LoadedStudy) -> list[str]:
    return ["maximize" if m == "max" else "minimize" for m in loaded.study.modes]


def _scheduler(loaded: LoadedStudy):
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler, MedianStoppingRule

    es, epochs = loaded.study.early_stopping, loaded.study.budget.epochs
    common = dict(time_attr="training_iteration", metric="val_accuracy", mode="max")
    if es.type == "asha":
        return ASHAScheduler(max_t=epochs, grace_period=min(es.grace_period, epochs), reduction_factor=es.reduction_factor, **common)
    if es.type == "hyperband":
        return HyperBandScheduler(max_t=epochs, reduction_factor=es.reduction_factor, **common)
    if es.type == "median":
        return MedianStoppingRule(grace_period=es.grace_period, min_samples_required=es.min_samples_required, **common)
    return None


def _trainable(loaded: LoadedStudy):
    from ray import tune

    from nasattn.tune import train_trial, trial_resources

    res = loaded.study.resources
    return tune.with_resources(train_trial, trial_resources(res.cpus_per_trial, res.gpus_per_trial))


def _saved_study(out: Path, loaded: LoadedStudy) -> None:
    """Write the resolved study (with its space inline) into the output folder, for the record and resume."""
    data = loaded.study.model_dump(mode="json")
    data["space"] = loaded.space_source
    (out / "study.yaml").write_text(
        f"# resolved study (from {loaded.source}); the search space is copied to space.yaml\n" + to_yaml(data)
    )
    src = Path(loaded.space_source.split(" (with --set)")[0].split(": space")[0])
    if src.is_file() and src.suffix in (".yaml", ".yml"):
        shutil.copyfile(src, out / "space.yaml")


def prepare_data(loaded: LoadedStudy, console: Any = None) -> str | None:
    """Resolve the data source and fill the decoded cache once, before any trial starts."""
    from nasattn.data import load_dataset

    data = loaded.resolved_data()
    dataset = load_dataset(data, download=loaded.study.download, progress=console is not None)
    _say(console, f"data: {getattr(dataset, 'source', data)} ({len(dataset)} images, {len(dataset.classes)} classes)")
    del dataset
    return data


def run_search(loaded: LoadedStudy, *, resume: bool = False, console: Any = None, live: bool | None = None) -> SearchResult:
    """Run (or resume) the study; returns where everything was written.

    Raises ConfigError for bad input found before the start, SearchFailed when every trial failed.
    """
    import optuna
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from nasattn.search.recorder import FailureGuard, StudyRecorder, create_or_load_study, redact, storage_url
    from nasattn.search.searcher import SpaceSearch, TrialConfigFactory, make_sampler, trial_dirname, trial_runs_root
    from nasattn.search.space import preset_points
    from nasattn.tune.progress import TrialTable

    t0 = time.time()
    study, space = loaded.study, loaded.space
    out = loaded.output
    exp_dir = out / EXPERIMENT
    restoring = False
    if exp_dir.exists():
        if not resume:
            raise ConfigError(
                f"{out} already holds a search; add --resume to continue it, or choose another --out"
            )
        restoring = True
    elif resume:
        _say(console, f"[yellow]nothing to resume in {out}: starting a new search[/]")
    preflight(study.resources, study.ray, loaded.source)  # an unreachable cluster or too few resources: nothing written
    out.mkdir(parents=True, exist_ok=True)
    if not restoring:
        _saved_study(out, loaded)

    data = prepare_data(loaded, console)
    url = storage_url(study.storage, out)
    name = _study_name(loaded)
    create_or_load_study(url, name, _directions(loaded))
    _say(console, f"optuna study {name!r} in {redact(url)}")

    res = study.resources
    with start_ray(res, study.ray, loaded.source) as ray_started:
        conc, ray_start_s = ray_started.concurrency, ray_started.start_seconds
        _say(console, f"{ray_started.summary}; up to {conc} trial{'' if conc == 1 else 's'} at once")
        trainable = _trainable(loaded)
        if restoring:
            if not tune.Tuner.can_restore(str(exp_dir)):
                raise ConfigError(f"{exp_dir}: no Tune experiment state to resume from (delete the folder to start again)")
            tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_unfinished=True, resume_errored=False)
        else:
            constants = {
                "data": data, "seed": study.train.seed, "device": study.train.device,
                "runs_root": str(trial_runs_root(out)), "checkpoint_every": study.train.checkpoint_every,
                # hyperband pauses trials at its rungs and resumes them from their last checkpoint
                "checkpoint_budget": None if study.early_stopping.type == "hyperband" else CHECKPOINT_BUDGET,
                "width_mult": study.train.width_mult, "subset": study.subset,
                "max_steps_per_epoch": study.budget.max_steps_per_epoch,
                "measure_latency": "latency_ms" in study.metric_names,
            }
            factory = TrialConfigFactory(space, constants, dict(study.train.recipe), study.budget.epochs)
            seeds = preset_points(space, list(study.seeds.presets))
            for i, p in enumerate(study.seeds.points):
                seeds[f"point{i + 1}"] = p
            metric: Any = study.metric_names if study.multi_objective else study.metric_names[0]
            mode: Any = study.modes if study.multi_objective else study.modes[0]
            searcher: Any = SpaceSearch(factory, metric, mode, make_sampler(study, space), seeds)
            searcher = ConcurrencyLimiter(searcher, max_concurrent=conc)
            recorder = StudyRecorder(url, name, study.metric_names)
            guard = FailureGuard(min(study.budget.abort_after_failures, study.budget.trials))
            table = TrialTable(total=study.budget.trials, concurrency=conc, time_budget_s=study.budget.time_limit,
                               title=f"nasattn search {study.name}", live=live)
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher, scheduler=_scheduler(loaded), num_samples=study.budget.trials,
                    time_budget_s=study.budget.time_limit, reuse_actors=False,
                    trial_dirname_creator=trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name=EXPERIMENT, storage_path=str(out), callbacks=[recorder, guard, table], stop=guard,
                    failure_config=tune.FailureConfig(max_failures=0),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=study.train.keep_checkpoints),
                    verbose=0,
                ),
            )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from nasattn.interrupt import tune_interrupts

        with tune_interrupts() as stop:
            grid = tuner.fit()
        rejected = 0 if restoring else getattr(getattr(searcher, "searcher", None), "rejected", 0)

    result = write_outputs(loaded, url, name, console=console)
    result.ray_start_s = ray_start_s
    result.rejected = rejected
    result.wall_s = time.time() - t0
    if stop.signum is not None:
        result.interrupted = stop.signum
        result.checkpointed = _unfinished_with_checkpoint(grid, url, name)
        return result
    ok = result.counts.get("COMPLETE", 0) + result.counts.get("STOPPED", 0)
    if ok == 0:
        first = _first_error(url, name)
        raise SearchFailed(f"every trial failed ({result.counts.get('FAILED', 0)} of {study.budget.trials}); first error: {first}")
    return result


def _unfinished_with_checkpoint(grid: Any, url: str, name: str) -> int:
    """Tune trials not recorded as finished in the study that have a checkpoint to resume from."""
    import optuna

    from nasattn.search.recorder import open_storage

    st = optuna.load_study(study_name=name, storage=open_storage(url))
    ended = ("COMPLETE", "STOPPED", "FAILED")  # the status attribute of trials that ended on their own
    done = {t.user_attrs.get("tune_trial_id") for t in st.get_trials(deepcopy=False) if t.user_attrs.get("status") in ended}
    return sum(1 for r in grid if r.checkpoint is not None and (r.metrics or {}).get("trial_id") not in done)


def _first_error(url: str, name: str) -> str:
    import optuna

    from nasattn.search.recorder import open_storage

    st = optuna.load_study(study_name=name, storage=open_storage(url))
    fails = [t for t in st.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.FAIL]
    return fails[0].user_attrs.get("error", "unknown error") if fails else "no trial finished"


# ----------------------------------------------------------------------------------------- outputs
_ATTR_FIRST = ("tune_trial_id", "seed_point", "status", "epochs", "duration_s")
_ATTR_LAST = ("run_dir", "error")
_ATTR_SKIP = ("arch", "recipe", "searcher_number")


def study_rows(study: Any, metric_names: list[str]) -> list[dict[str, Any]]:
    """One row per recorded trial: number, state, ids, objective values, every parameter and metric, error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        for k in _ATTR_FIRST:
            row[k] = a.get(k)
        for i, m in enumerate(metric_names):
            row[f"objective.{m}"] = t.values[i] if t.values else None
        for k, v in t.params.items():
            row[f"param.{k}"] = v
        for k, v in a.items():
            if k not in _ATTR_FIRST and k not in _ATTR_LAST and k not in _ATTR_SKIP:
                row[k] = v
        for k in _ATTR_LAST:
            row[k] = a.get(k)
        rows.append(row)
    return rows


def _pareto(study: Any) -> list[Any]:
    try:
        return list(study.best_trials)
    except Exception:  # noqa: BLE001
        return []


def pick_best(study: Any, metric_names: list[str]) -> Any | None:
    """The best finished trial by validation accuracy (multi-objective: among the Pareto front)."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return None
    pool = _pareto(study) if len(metric_names) > 1 else complete
    pool = pool or complete
    i = metric_names.index("val_accuracy")
    return max(pool, key=lambda t: (t.values[i], -(t.user_attrs.get("params") or 0)))


def write_outputs(loaded: LoadedStudy, url: str, name: str, console: Any = None) -> SearchResult:
    import optuna

    from nasattn.search.recorder import open_storage
    from nasattn.tune import write_rows_csv

    out = loaded.output
    st = optuna.load_study(study_name=name, storage=open_storage(url))
    metric_names = loaded.study.metric_names
    rows = study_rows(st, metric_names)
    trials_csv = write_rows_csv(rows, out / "trials.csv")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"] or r["state"]] = counts.get(r["status"] or r["state"], 0) + 1
    best = pick_best(st, metric_names)
    best_dir = None
    best_info = None
    if best is not None:
        best_dir = out / "best"
        best_dir.mkdir(exist_ok=True)
        arch = json.loads(best.user_attrs.get("arch") or "null")
        recipe = json.loads(best.user_attrs.get("recipe") or "null")
        if arch is not None:
            arch["name"] = arch.get("name") or f"{loaded.study.name}-trial{best.number}"
            (best_dir / "arch.yaml").write_text(
                f"# best trial {best.number} ({best.user_attrs.get('tune_trial_id')}) of study {name!r}; "
                f"widths before width_mult {loaded.study.train.width_mult:g}\n" + to_yaml(arch)
            )
        if recipe is not None:
            (best_dir / "recipe.yaml").write_text(to_yaml(recipe))
        run_dir = best.user_attrs.get("run_dir")
        metrics: dict[str, Any] = {}
        if run_dir and (Path(run_dir) / "metrics.json").is_file():
            metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
            for extra in ("history.csv", "predictions.csv"):
                if (Path(run_dir) / extra).is_file():
                    shutil.copyfile(Path(run_dir) / extra, best_dir / extra)
            if (Path(run_dir) / "arch.yaml").is_file():
                shutil.copyfile(Path(run_dir) / "arch.yaml", best_dir / "trained_arch.yaml")
        else:
            metrics = {k: v for k, v in best.user_attrs.items() if k not in ("arch", "recipe")}
        metrics.update(trial_number=best.number, tune_trial_id=best.user_attrs.get("tune_trial_id"),
                       params_chosen=best.params, objectives=dict(zip(metric_names, best.values)),
                       width_mult=loaded.study.train.width_mult)
        (best_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        best_info = {"number": best.number, **dict(zip(metric_names, best.values)),
                     "test_accuracy": best.user_attrs.get("test_accuracy"), "arch": arch}
    if len(metric_names) > 1:
        front = _pareto(st)
        write_rows_csv([r for r in rows if r["number"] in {t.number for t in front}], out / "pareto.csv")
    report, report_error = None, None
    if loaded.study.report:
        from nasattn.report import render_report_safely

        report, report_error = render_report_safely(out, warn=lambda msg: _say(console, f"[yellow]{msg}[/]"))
    return SearchResult(output=out, trials_csv=trials_csv, best_dir=best_dir, report=report, counts=counts,
                        best=best_info, report_error=report_error)


