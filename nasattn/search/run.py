"""Running a study: Ray Tune + Optuna, resumable, writing trials.csv, best/, study.db and report.html.

The imports inside functions here are the modules that import Ray and Optuna at their top (recorder,
resume, searcher, tune.progress) and the torch-side data preparation: reading and checking a study
(``nasattn search --dry-run``, the run-file parsers) stays free of the heavy optional packages.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasattn.say import say
from nasattn.schema import (
    ARCH_FILE, BEST_DIR, BEST_MISSING, EXPERIMENT, HISTORY_FILE, METRICS_FILE, MODEL_FILE, PREDICTIONS_FILE, RECIPE_FILE,
    RUN_JSON, STUDY_FILE, TRAINED_ARCH_FILE, TRIALS_CSV,
    VAL_ACCURACY_LAST, ExitCode, TrialStatus,
)
from nasattn.config import ConfigError, NasattnError, to_yaml
from nasattn.search.study import LoadedStudy
from nasattn.tune.resources import preflight, start_ray, tune_experiment, tune_storage
from nasattn.tune.trainable import CHECKPOINT_BUDGET
from nasattn.interrupt import tune_interrupts
from nasattn.report import render_report_safely
from nasattn.rundir import current_command
from nasattn.search.space import preset_points
from nasattn.secrets import mask_secrets, write_private
from nasattn.study_rows import pareto_numbers, study_rows
from nasattn.study_storage import check_existing_sqlite, sqlite_path
from nasattn.tune import train_trial, trial_resources, write_rows_csv
from nasattn.tune.runner import delete_uri_checkpoint, uri_checkpoints

if TYPE_CHECKING:
    import optuna
    from rich.console import Console



class SearchFailed(NasattnError, RuntimeError):
    """Every trial of the search failed; ``str()`` shows the first error."""

    exit_code = ExitCode.FAILED


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




def _study_name(loaded: LoadedStudy) -> str:
    return loaded.study.study_name or loaded.study.name


def _directions(loaded: LoadedStudy) -> list[str]:
    return ["maximize" if m == "max" else "minimize" for m in loaded.study.modes]


def _scheduler(loaded: LoadedStudy, resumed: bool = False):
    """The study's early-stopping rule on the epoch clock (None: none); ``resumed``: its Resumed* class."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, HyperBandScheduler, MedianStoppingRule  # lazy: ray is a heavy optional package

    from nasattn.search.resume import RESUMED, SCHEDULER_METRIC, TIME_ATTR

    es, epochs = loaded.study.early_stopping, loaded.study.budget.epochs
    common = dict(time_attr=TIME_ATTR, metric=SCHEDULER_METRIC, mode="max")
    if es.type == "asha":
        cls, kw = AsyncHyperBandScheduler, dict(max_t=epochs, grace_period=min(es.grace_period, epochs),
                                                reduction_factor=es.reduction_factor)
    elif es.type == "hyperband":
        cls, kw = HyperBandScheduler, dict(max_t=epochs, reduction_factor=es.reduction_factor)
    elif es.type == "median":
        cls, kw = MedianStoppingRule, dict(grace_period=es.grace_period, min_samples_required=es.min_samples_required)
    else:
        return None
    return (RESUMED.get(cls, cls) if resumed else cls)(**kw, **common)


def _trainable(loaded: LoadedStudy):
    from ray import tune  # lazy: ray is a heavy optional package


    res = loaded.study.resources
    return tune.with_resources(train_trial, trial_resources(res.cpus_per_trial, res.gpus_per_trial))


def _saved_study(out: Path, loaded: LoadedStudy) -> None:
    """Write the resolved study (space inline, secrets masked, mode 0600) into the output folder, for the record."""

    data = mask_secrets(loaded.study.model_dump(mode="json"))
    data["space"] = loaded.space_source
    write_private(out / STUDY_FILE,
                  f"# resolved study (from {loaded.source}); the search space is copied to space.yaml\n" + to_yaml(data))
    src = Path(loaded.space_source.split(" (with --set)")[0].split(": space")[0])
    if src.is_file() and src.suffix in (".yaml", ".yml"):
        shutil.copyfile(src, out / "space.yaml")


RUN_FILE = RUN_JSON  # the run id and the fingerprint of the resolved study, written at the start
# Study fields that may differ on --resume (they change nothing the saved run depends on).
RESUME_FREE = ("output", "report")


def resolved_study(loaded: LoadedStudy) -> dict[str, Any]:
    """The study as the run uses it: every field (space resolved inline), minus RESUME_FREE."""

    data = loaded.study.model_dump(mode="json")
    data["space"] = loaded.space.model_dump(mode="json")
    return mask_secrets({k: v for k, v in data.items() if k not in RESUME_FREE})


def study_fingerprint(resolved: dict[str, Any]) -> str:
    """SHA-256 of the resolved study's canonical JSON."""
    import hashlib

    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()


def start_record(out: Path, loaded: LoadedStudy) -> str:
    """Write ``run.json`` (run id, fingerprint, folder, masked command and study; mode 0600); returns the run id."""
    import uuid


    resolved = resolved_study(loaded)
    run_id = uuid.uuid4().hex[:12]
    record = {"run_id": run_id, "fingerprint": study_fingerprint(resolved), "source": loaded.source,
              "folder": str(out), "command": mask_secrets(current_command()), "study": resolved}
    write_private(out / RUN_FILE, json.dumps(record, indent=2, default=str) + "\n")
    return run_id


def check_resume(out: Path, loaded: LoadedStudy, url: str | None = None) -> str:
    """The run id to continue; ConfigError unless ``out`` holds a run of exactly this study whose study
    database is readable, and (a moved or copied folder) whose storage is not the original folder's."""

    run_file = out / RUN_FILE
    if not out.is_dir():
        raise ConfigError(f"--resume: {out} does not exist; nothing to resume (drop --resume to start a search)")
    if not run_file.is_file() or (loaded.study.ray.storage is None and not (out / EXPERIMENT).is_dir()):
        raise ConfigError(f"--resume: {out} holds no search run ({RUN_FILE} or {EXPERIMENT}/ missing), nothing to resume; "
                          "drop --resume to start a search, or give the folder of the run to continue")
    try:
        record = json.loads(run_file.read_text())
        saved, run_id = record["study"], record["run_id"]
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--resume: {run_file} is unreadable ({e}); cannot check the run's study") from None
    now = resolved_study(loaded)
    if study_fingerprint(now) != record.get("fingerprint"):
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        raise ConfigError(
            f"--resume: {loaded.source} is not the study {out} was started with "
            f"({record.get('source')}); fields that differ: {', '.join(changed)}. A resumed search keeps "
            f"its study (budget included); resume with the original study file, or start a new search in another --out"
        )
    if url is not None:
        _check_not_elsewhere(out, record.get("folder"), url)
        db = sqlite_path(url)
        if db is not None and not db.is_file():
            raise ConfigError(f"--resume: {db} is missing: the run's trials are recorded there, so there is nothing "
                              "to continue from (restore the file, or start a new search in another --out)")
        check_existing_sqlite(url)
    return run_id


def _check_not_elsewhere(out: Path, started_in: str | None, url: str) -> None:
    """A ConfigError when a moved or copied folder's storage is a file inside the folder it was started in."""
    if not started_in or Path(started_in) == out:
        return
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url[len("journal:"):] if url.startswith("journal:") else None
    if path is not None and Path(path).resolve().is_relative_to(Path(started_in)):
        raise ConfigError(f"--resume: {out} was started in {started_in} and its study storage {path} is inside that "
                          f"folder; resuming would write into the original. Resume the original folder instead")


def prepare_data(loaded: LoadedStudy, console: Console | None = None) -> str | None:
    """Resolve the data source, fill the decoded cache at the space's input size and check the split, once."""
    from nasattn.engine.prepare import prepare_data as prepare  # lazy: keeps torch out of run-file parsing and the CLI's start

    data, line = prepare(loaded.resolved_data(), download=loaded.study.download, image_size=loaded.space.input_size,
                         recipe=loaded.study.train.recipe, recipe_field="train.recipe.class_weights",
                         progress=console is not None)
    say(console, line)
    return data


def run_search(loaded: LoadedStudy, *, resume: bool = False, console: Console | None = None, live: bool | None = None) -> SearchResult:
    """Run (or resume) the study; returns where everything was written.

    A resume starts a new Tuner rebuilt from the persistent study (:mod:`nasattn.search.resume`); it
    never loads Tune's saved state. Raises ConfigError for bad input found before the start (nothing
    written for a refused storage), SearchFailed when every trial failed.
    """
    import optuna  # lazy: optuna is a heavy optional package

    from nasattn.search.recorder import StudyLedger, create_or_load_study, redact, storage_url
    from nasattn.search.resume import run_records, unfinished_checkpoints

    t0 = time.time()
    study, out = loaded.study, loaded.output
    experiment = tune_experiment(study.ray, out, EXPERIMENT)  # Tune's experiment: here, or on ray.storage
    url = storage_url(study.storage, out)
    if resume:
        run_id = check_resume(out, loaded, url)
    elif (out / EXPERIMENT).exists() or (out / RUN_FILE).exists():
        raise ConfigError(f"{out} already holds a search; add --resume to continue it, or choose another --out")
    # an unreachable cluster, too few resources, checkpoints or data no other node reaches: nothing written
    preflight(study.resources, study.ray, loaded.source, _checkpoints(loaded), data=loaded.resolved_data())
    out.mkdir(parents=True, exist_ok=True)
    name = _study_name(loaded)
    persistent = create_or_load_study(url, name, _directions(loaded), study.metric_names)  # refused: no run.json
    data = prepare_data(loaded, console)
    if not resume:
        _saved_study(out, loaded)
        run_id = start_record(out, loaded)
    say(console, f"optuna study {name!r} in {redact(url)}")
    records = run_records(persistent, run_id) if resume else []
    resume_from = unfinished_checkpoints(experiment, records)
    finished = sum(1 for t in records if t.state.is_finished())
    if resume:
        say(console, f"resuming: {finished} finished, {len(records) - finished} to continue "
                     f"({len(resume_from)} from a checkpoint), {max(0, study.budget.trials - len(records))} not started")
    ledger = StudyLedger(url, name, run_id)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    session = _fit(loaded, data, ledger, records, resume_from, study.budget.trials - finished, console, live)
    if not study.train.keep_finished_checkpoints:
        remove_finished_checkpoints(experiment, url, name)
    result = write_outputs(loaded, url, name, console=console)
    result.ray_start_s, result.rejected = session["ray_start_s"], session["rejected"]
    result.wall_s = time.time() - t0
    if session["signum"] is not None:
        result.interrupted = session["signum"]
        result.checkpointed = len(unfinished_checkpoints(experiment, run_records(ledger.connect(), run_id)))
        return result
    ok = sum(result.counts.get(s, 0) for s in (TrialStatus.COMPLETE, TrialStatus.STOPPED, TrialStatus.INTERRUPTED))
    if ok == 0:
        raise SearchFailed(_nothing_finished(result.counts, study.budget.time_limit, url, name))
    return result


def _nothing_finished(counts: dict[str, int], time_limit: float | None, url: str, name: str) -> str:
    """Why a search ended with no trial that gave a value: the time limit, or the trials' own errors."""
    failed, cut = counts.get(TrialStatus.FAILED, 0), counts.get(TrialStatus.NOT_STARTED, 0)
    if cut and not failed:
        limit = f"the time limit ({time_limit:g} s)" if time_limit else "the time limit"
        trials = "the one started trial before its" if cut == 1 else f"all {cut} started trials before their"
        return f"{limit} ended {trials} first epoch; give budget.time_limit more time"
    note = f", {cut} more ended by the time limit before their first epoch" if cut else ""
    return f"every trial failed ({failed} of {failed + cut} started{note}); first error: {_first_error(url, name)}"


def _checkpoints(loaded: LoadedStudy) -> str | None:
    """The setting that turns the study's checkpoints on (named in a refusal), None when they are off."""
    return "train.checkpoint_every" if loaded.study.train.checkpoint_every else None


def _constants(loaded: LoadedStudy, data: str | None) -> dict[str, Any]:
    """The part of every trial's config that does not depend on the sampled point."""
    from nasattn.search.searcher import trial_runs_root

    study = loaded.study
    return {
        "data": data, "seed": study.train.seed, "device": study.train.device,
        "runs_root": str(trial_runs_root(loaded.output)), "checkpoint_every": study.train.checkpoint_every,
        # hyperband pauses trials at its rungs and resumes them from their last checkpoint
        "checkpoint_budget": None if study.early_stopping.type == "hyperband" else CHECKPOINT_BUDGET,
        "width_mult": study.train.width_mult, "subset": study.subset,
        "max_steps_per_epoch": study.budget.max_steps_per_epoch,
        "measure_latency": "latency_ms" in study.metric_names,
    } | ({} if study.train.zero_cost else {"zero_cost_batch": 0})  # off: no training-free scores (on by default)


def _searcher(loaded: LoadedStudy, data: str | None, ledger: Any, records: list[Any], resume_from: dict[int, str]):
    """The study's SpaceSearch (continuing ``records`` on a resume)."""
    from nasattn.search.searcher import SpaceSearch, TrialConfigFactory, make_sampler, trial_runs_root

    study, space = loaded.study, loaded.space
    factory = TrialConfigFactory(space, _constants(loaded, data), dict(study.train.recipe), study.budget.epochs)
    seeds = preset_points(space, list(study.seeds.presets))
    for i, p in enumerate(study.seeds.points):
        seeds[f"point{i + 1}"] = p
    metric: Any = study.metric_names if study.multi_objective else study.metric_names[0]
    mode: Any = study.modes if study.multi_objective else study.modes[0]
    return SpaceSearch(factory, metric, mode, make_sampler(study, space, resumed=len(records)), seeds, ledger=ledger,
                       runs_root=trial_runs_root(loaded.output), records=records, resume_from=resume_from)


def _fit(loaded: LoadedStudy, data: str | None, ledger: Any, records: list[Any], resume_from: dict[int, str],
         num_samples: int, console: Console | None, live: bool | None) -> dict[str, Any]:
    """One Tuner over ``num_samples`` trials (none: no Ray); returns signum, rejected and ray_start_s."""
    from ray import tune  # lazy: ray is a heavy optional package
    from ray.tune.search import ConcurrencyLimiter  # lazy: ray is a heavy optional package

    from nasattn.search.recorder import FailureGuard, StudyRecorder
    from nasattn.search.resume import ReplayOnAdd, resume_scheduler
    from nasattn.search.searcher import trial_dirname
    from nasattn.tune.progress import TrialTable

    study = loaded.study
    if num_samples <= 0:
        return {"signum": None, "rejected": 0, "ray_start_s": 0.0}
    with start_ray(study.resources, study.ray, loaded.source, home=loaded.output,
                   checkpoints=_checkpoints(loaded)) as ray_started:
        conc = ray_started.concurrency
        say(console, f"{ray_started.summary}; up to {conc} trial{'' if conc == 1 else 's'} at once")
        searcher = _searcher(loaded, data, ledger, records, resume_from)
        scheduler = _scheduler(loaded, resumed=bool(records))
        if isinstance(scheduler, ReplayOnAdd):
            resume_scheduler(scheduler, records, resume_from)
        guard = FailureGuard(min(study.budget.abort_after_failures, num_samples))
        table = TrialTable(total=study.budget.trials, concurrency=conc, time_budget_s=study.budget.time_limit,
                           title="trials", live=live)  # the command line above already names the study
        tuner = tune.Tuner(
            _trainable(loaded),
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=conc), scheduler=scheduler,
                num_samples=num_samples, time_budget_s=study.budget.time_limit, reuse_actors=True,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=EXPERIMENT, storage_path=tune_storage(study.ray, loaded.output),
                callbacks=[StudyRecorder(ledger, study.metric_names, time_limit=study.budget.time_limit), guard, table],
                stop=guard, failure_config=tune.FailureConfig(max_failures=0),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=study.train.keep_checkpoints), verbose=0,
            ),
        )
        with tune_interrupts() as stop:
            tuner.fit()
        if guard.tripped:  # trials the abort cut short would otherwise stay RUNNING
            ledger.close_running("abort", f"search aborted: the first {guard.failures} trials failed")
    return {"signum": stop.signum, "rejected": searcher.rejected, "ray_start_s": ray_started.start_seconds}


def _first_error(url: str, name: str) -> str:
    import optuna  # lazy: optuna is a heavy optional package

    from nasattn.search.recorder import open_storage

    st = optuna.load_study(study_name=name, storage=open_storage(url))
    fails = [t for t in st.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.FAIL]
    return fails[0].user_attrs.get("error", "unknown error") if fails else "no trial finished"


# ----------------------------------------------------------------------------------------- outputs
def remove_finished_checkpoints(exp_dir: Path | str, url: str, name: str) -> int:
    """Delete Tune's checkpoints of trials whose study record is finished (in a folder or on a storage URI);
    returns how many folders went."""
    import optuna  # lazy: optuna is a heavy optional package

    from nasattn.search.recorder import open_storage

    st = optuna.load_study(study_name=name, storage=open_storage(url))
    finished = {str(t.number) for t in st.get_trials(deepcopy=False) if t.state.is_finished()}
    if isinstance(exp_dir, str):
        gone = [(t, c) for t, c in uri_checkpoints(exp_dir) if t.split("-", 1)[0] in finished]
        for trial, ckpt in gone:
            delete_uri_checkpoint(exp_dir, trial, ckpt)
        return len(gone)
    removed = 0
    for ckpt in sorted(exp_dir.glob("*-*/checkpoint_*")):
        if ckpt.is_dir() and ckpt.parent.name.split("-", 1)[0] in finished:
            shutil.rmtree(ckpt, ignore_errors=True)
            removed += 1
    return removed


def pick_best(study: optuna.Study, metric_names: list[str]) -> optuna.trial.FrozenTrial | None:
    """The best finished trial by validation accuracy (multi-objective: among the Pareto front)."""
    import optuna  # lazy: optuna is a heavy optional package

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return None

    front = pareto_numbers(study) if len(metric_names) > 1 else set()
    pool = [t for t in complete if t.number in front] if front else complete
    pool = pool or complete
    i = metric_names.index(VAL_ACCURACY_LAST)
    return max(pool, key=lambda t: (t.values[i], -(t.user_attrs.get("params") or 0)))


def _local_run_dir(out: Path, number: int) -> Path:
    """Trial ``number``'s run folder inside the output folder ``out``."""
    from nasattn.search.searcher import trial_runs_root

    return trial_runs_root(out) / str(number)


def write_outputs(loaded: LoadedStudy, url: str, name: str, console: Console | None = None) -> SearchResult:
    import optuna  # lazy: optuna is a heavy optional package

    from nasattn.search.recorder import open_storage

    out = loaded.output
    st = optuna.load_study(study_name=name, storage=open_storage(url))
    metric_names = loaded.study.metric_names
    rows = study_rows(st, metric_names)
    for row in rows:  # folders under --out as they are now (moved since, or written on another node and sent home)
        folder = _local_run_dir(out, row["number"])
        if row.get("run_dir") or folder.is_dir():
            row["run_dir"] = str(folder)
    trials_csv = write_rows_csv(rows, out / TRIALS_CSV)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"] or r["state"]] = counts.get(r["status"] or r["state"], 0) + 1
    best = pick_best(st, metric_names)
    best_dir, best_info = _write_best(loaded, name, best, console) if best is not None else (None, None)
    if len(metric_names) > 1:
        write_rows_csv([r for r in rows if r.get("pareto")], out / "pareto.csv")
    report, report_error = None, None
    if loaded.study.report:

        report, report_error = render_report_safely(out, warn=lambda msg: say(console, f"[yellow]{msg}[/]"))
    return SearchResult(output=out, trials_csv=trials_csv, best_dir=best_dir, report=report, counts=counts,
                        best=best_info, report_error=report_error)


def _write_best(loaded: LoadedStudy, name: str, best: Any, console: Console | None = None) -> tuple[Path, dict[str, Any]]:
    """Write ``best/`` (the best trial's arch, recipe, metrics and run files); return it and its summary.
    Run files the trial's folder lacks are listed in ``best/metrics.json`` (``missing``) and on the console."""
    out = loaded.output
    metric_names = loaded.study.metric_names
    best_dir = out / BEST_DIR
    best_dir.mkdir(exist_ok=True)
    arch = json.loads(best.user_attrs.get("arch") or "null")
    recipe = json.loads(best.user_attrs.get("recipe") or "null")
    if arch is not None:
        arch["name"] = arch.get("name") or f"{loaded.study.name}-trial{best.number}"
        (best_dir / ARCH_FILE).write_text(
            f"# best trial {best.number} ({best.user_attrs.get('tune_trial_id')}) of study {name!r}; "
            f"widths before width_mult {loaded.study.train.width_mult:g}\n" + to_yaml(arch)
        )
    if recipe is not None:
        (best_dir / RECIPE_FILE).write_text(to_yaml(recipe))
    metrics = _best_run_metrics(out, best, best_dir)
    if metrics[BEST_MISSING]:
        say(console, f"[yellow]{best_dir} lacks {', '.join(metrics[BEST_MISSING])}: trial {best.number}'s run folder "
                     f"{_local_run_dir(out, best.number)} does not hold them[/]")
    metrics.update(trial_number=best.number, tune_trial_id=best.user_attrs.get("tune_trial_id"),
                   params_chosen=best.params, objectives=dict(zip(metric_names, best.values)),
                   width_mult=loaded.study.train.width_mult)
    (best_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=str))
    return best_dir, {"number": best.number, **dict(zip(metric_names, best.values)),
                      "test_accuracy": best.user_attrs.get("test_accuracy"), "arch": arch}


BEST_COPIES = {HISTORY_FILE: HISTORY_FILE, PREDICTIONS_FILE: PREDICTIONS_FILE, MODEL_FILE: MODEL_FILE,
               ARCH_FILE: TRAINED_ARCH_FILE}
"""The best trial's run files copied into best/ (run-folder name -> name in best/)."""


def _best_run_metrics(out: Path, best: Any, best_dir: Path) -> dict[str, Any]:
    """The best trial's metrics.json (else its Optuna user attrs), its run files copied into ``best_dir``, and
    under ``missing`` the run files its folder lacks (metrics.json first when the attrs stand in for it)."""
    run_dir = _local_run_dir(out, best.number)
    missing: list[str] = []
    if (run_dir / METRICS_FILE).is_file():
        metrics = json.loads((run_dir / METRICS_FILE).read_text())
    else:
        metrics = {k: v for k, v in best.user_attrs.items() if k not in ("arch", "recipe")}
        missing.append(METRICS_FILE)
    for src, dst in BEST_COPIES.items():
        if (run_dir / src).is_file():
            shutil.copyfile(run_dir / src, best_dir / dst)
        else:
            (best_dir / dst).unlink(missing_ok=True)  # an earlier session's copy is not this trial's
            missing.append(src)
    metrics[BEST_MISSING] = missing
    return metrics
