"""Tune trials -> a persistent Optuna study (SQLite, any SQLAlchemy URL, or a journal file).

A trial is opened as RUNNING when the searcher suggests it (real ``datetime_start``), gets an
intermediate value per reported epoch, and is finished in place with ``study.tell``:
COMPLETE (trained to the end: the objective values), PRUNED (stopped early by the scheduler or by
the time limit: its last intermediate value and ``stopped_by``), FAIL (``error``). Records are keyed
by the run id and the sampler's trial number, so a trial re-run after ``kill -9`` and ``--resume``
reuses its record: nothing is recorded twice.

User attributes hold measurements only (``epochs``, ``last_lr``, ``test_accuracy``, ...); the sampled
values are the trial's Optuna params, and ``recipe`` is the full recipe it trained with.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper

from nasattn.schema import HISTORY_FILE, RESTORED_VALUES, STOPPED_FILE, TUNE_BOOKKEEPING, VAL_ACCURACY_LAST, TrialStatus
from nasattn.study_storage import create_or_load_study, open_storage, redact, storage_url  # noqa: F401 - re-exported
from nasattn.tune.trainable import read_error

# Metrics that are not copied into user attributes: Tune's bookkeeping (its run time is kept) and ``final``.
_SKIP = (TUNE_BOOKKEEPING - {"time_total_s"}) | {"final"}


def _error_text(trial: Any) -> str:
    """The trial's error: the ERROR file its run wrote (sent home from another node), else the last error
    line of Tune's error trace with the node Ray names in it (``ip=...``)."""
    config = trial.config or {}
    run_dir = config.get("run_dir") or (Path(config["runs_root"]) / trial.trial_id if config.get("runs_root") else None)
    written = read_error(run_dir)
    if written:
        return written
    text = _tune_error_trace(trial)
    if not text:
        return "unknown error (see the trial's folder under tune/)"
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    # The last line of a traceback is "ExcType: message"; keep it first, then a short tail.
    last = lines[-1].strip() if lines else "unknown error"
    for ln in reversed(lines):
        if "Error" in ln or "Exception" in ln:
            last = ln.strip()
            break
    node = re.search(r"\bip=([0-9A-Fa-f.:]+)", str(text))
    return (last + (f" (on node {node.group(1)})" if node else ""))[:2000]


def _tune_error_trace(trial: Any) -> str | None:
    """Tune's text trace of a failed trial: its error file in the driver's trial folder (written before the
    callbacks run), else the copy in Tune's storage; None if neither can be read."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        return Path(path).read_text(errors="replace")
    try:
        return trial.get_error()
    except Exception:  # noqa: BLE001 - no trace: the caller says so
        return None


class StudyLedger:
    """The persistent Optuna study of one run: opens, updates and finishes trial records in place.

    Records carry ``run_id`` and ``sampler_number`` (the in-memory searcher's trial number); opening
    the same key again returns the existing record. Pickled (by Tune's experiment snapshot) without the
    storage password; nasattn never loads such a pickle. The storage is reopened lazily.

    Public study API where Optuna has one: records are created with ``optuna.trial.create_trial`` +
    ``Study.add_trial`` and finished with ``Study.tell``. Three storage calls remain, because Optuna has
    no public call to update a RUNNING trial it did not hand out itself: ``Trial.report`` and
    ``Trial.set_user_attr`` exist only on the ``Trial`` that ``Study.ask`` returned in the same process,
    and these records are updated from a Tune callback, across driver restarts (``--resume``). So
    :meth:`report` and :meth:`finish` use ``storage.set_trial_intermediate_value`` and
    ``storage.set_trial_user_attr`` on the id from ``storage.get_trial_id_from_study_id_trial_number``;
    :meth:`get` reads one trial with ``storage.get_trial`` (``Study.get_trials`` would load every
    trial at every reported epoch).
    """

    def __init__(self, url: str, study_name: str, run_id: str) -> None:
        self.url = url
        self.study_name = study_name
        self.run_id = run_id
        self.storage: Any = None
        self.study: Any = None
        self.numbers: dict[int, int] | None = None  # sampler number -> study trial number

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment folder: keep the storage password out of it
        return {**vars(self), "url": redact(self.url), "storage": None, "study": None, "numbers": None}

    def connect(self) -> Any:
        """The loaded study (opened on first use)."""
        if self.study is None:
            import optuna  # lazy: optuna is a heavy optional package

            self.storage = open_storage(self.url)
            self.study = optuna.load_study(study_name=self.study_name, storage=self.storage,
                                           sampler=optuna.samplers.RandomSampler())
        return self.study

    def trial_ids(self) -> dict[int, int]:
        """Sampler number -> study trial number, for this run's records."""
        if self.numbers is None:
            self.numbers = {
                int(t.user_attrs["sampler_number"]): t.number for t in self.connect().get_trials(deepcopy=False)
                if t.user_attrs.get("run_id") == self.run_id and t.user_attrs.get("sampler_number") is not None
            }
        return self.numbers

    def get(self, number: int) -> Any:
        """The FrozenTrial with study number ``number``."""
        tid = self.storage_id(number)  # connects first
        return self.storage.get_trial(tid)

    def storage_id(self, number: int) -> int:
        self.connect()
        sid = self.storage.get_study_id_from_name(self.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(sid, number)

    def open(self, key: int, params: dict[str, Any], distributions: dict[str, str], attrs: dict[str, Any]) -> int:
        """Open a RUNNING record for sampler trial ``key`` (or return the existing one); its study number."""
        import optuna  # lazy: optuna is a heavy optional package
        from optuna.distributions import json_to_distribution  # lazy: optuna is a heavy optional package

        known = self.trial_ids().get(int(key))
        if known is not None:
            old = self.get(known)
            if old.params == params or old.state.is_finished():
                if not old.state.is_finished():
                    self.storage.set_trial_user_attr(self.storage_id(known), "tune_trial_id", attrs.get("tune_trial_id"))
                return known
            self.finish(known, optuna.trial.TrialState.FAIL, None,
                        {"status": TrialStatus.FAILED, "error": "interrupted; the resumed search drew another point"})
        user_attrs = {"run_id": self.run_id, "sampler_number": int(key)}
        for k, v in attrs.items():
            user_attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
        frozen = optuna.trial.create_trial(
            state=optuna.trial.TrialState.RUNNING, params=params,
            distributions={k: json_to_distribution(v) for k, v in distributions.items()}, user_attrs=user_attrs,
        )
        study = self.connect()
        study.add_trial(frozen)
        self.numbers = None
        return self.trial_ids()[int(key)]

    def close_running(self, stopped_by: str, error: str) -> int:
        """Finish this run's records still RUNNING (the search ended without them): PRUNED at their last
        epoch when they reported one, else FAIL with ``error``; returns how many."""
        import optuna  # lazy: optuna is a heavy optional package

        closed = 0
        for number in sorted(self.trial_ids().values()):
            t = self.get(number)
            if t.state.is_finished():
                continue
            if t.intermediate_values:
                closed += self.finish(number, optuna.trial.TrialState.PRUNED, None,
                                      {"status": TrialStatus.STOPPED, "stopped_by": stopped_by})
            else:
                closed += self.finish(number, optuna.trial.TrialState.FAIL, None,
                                      {"status": TrialStatus.NOT_STARTED, "stopped_by": stopped_by, "error": error})
        return closed

    def is_running(self, number: int) -> bool:
        return not self.get(number).state.is_finished()

    def report(self, number: int, step: int | None, value: float | None, attrs: dict[str, Any]) -> None:
        """An intermediate value (one per epoch) and running attributes of a RUNNING record."""
        if not self.is_running(number):
            return
        tid = self.storage_id(number)
        if step is not None and value is not None:
            self.storage.set_trial_intermediate_value(tid, int(step), float(value))
        for k, v in attrs.items():
            self.storage.set_trial_user_attr(tid, k, v)

    def finish(self, number: int, state: Any, values: list[float] | None, attrs: dict[str, Any]) -> bool:
        """Set the final attributes and tell the end state (PRUNED keeps its last intermediate value)."""
        if not self.is_running(number):
            return False
        tid = self.storage_id(number)
        for k, v in attrs.items():
            self.storage.set_trial_user_attr(tid, k, v)
        self.connect().tell(number, values, state=state, skip_if_finished=True)
        return True


def trial_number(trial: Any) -> int | None:
    """The study number of a Tune trial (set by the searcher in ``config["optuna"]["number"]``)."""
    number = ((trial.config or {}).get("optuna") or {}).get("number")
    return None if number is None else int(number)


def measured_attrs(result: dict[str, Any], recipe: dict[str, Any] | None) -> dict[str, Any]:
    """User attributes from a Tune result: measurements only; a recipe field's value becomes ``last_<field>``."""
    recipe_keys = set(recipe or {})
    attrs: dict[str, Any] = {}
    for k, v in result.items():
        if k in _SKIP or isinstance(v, (dict, list)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        attrs[f"last_{k}" if k in recipe_keys else k] = v
    return attrs


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class StudyRecorder(Callback):
    """Updates each trial's record as Tune reports it and finishes it when the trial ends.

    Trials that Tune stops without a completion event (the time limit) are finished at the end of
    the experiment: PRUNED with ``stopped_by: time_limit`` and their last epoch, or FAIL with the
    same reason when they reported no epoch. Trials still running at an interrupt stay RUNNING and
    are continued by ``--resume``. A stopped trial's folder keeps ``history.csv`` and ``stopped.json``.
    """

    def __init__(self, ledger: StudyLedger, metrics: list[str], time_limit: float | None = None,
                 scheduler_metric: str = VAL_ACCURACY_LAST) -> None:
        self.ledger = ledger
        self.metrics = metrics
        self.time_limit = time_limit
        self.scheduler_metric = scheduler_metric
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self.started = time.time()

    def get_state(self) -> dict[str, Any]:
        return {"histories": self.histories}

    def set_state(self, state: dict[str, Any]) -> None:
        self.histories = state.get("histories", {})

    def setup(self, **info: Any) -> None:
        self.started = time.time()

    # ------------------------------------------------------------------ Tune events
    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        number = trial_number(trial)
        epoch = result.get("epoch") or result.get("training_iteration")
        row = {k: v for k, v in measured_attrs(result, {}).items()}
        self.histories.setdefault(trial.trial_id, []).append(row)
        if number is None:
            return
        # a trial resumed from a checkpoint: the epochs it restored, which a crash may have kept from the study
        for step, earlier in (result.get(RESTORED_VALUES) or {}).items():
            self.ledger.report(number, int(step), _finite(earlier), {})
        if result.get("final"):
            return
        value = _finite(result.get(self.scheduler_metric))
        self.ledger.report(number, epoch, value,
                           {"epochs": epoch, "duration_s": result.get("time_total_s"), "status": TrialStatus.RUNNING})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.record(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.record(trial, _error_text(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        timed_out = bool(self.time_limit) and time.time() - self.started >= 0.9 * float(self.time_limit)
        for trial in trials:
            number = trial_number(trial)
            if number is None or not self.ledger.is_running(number):
                continue
            if trial.status == TrialStatus.ERROR:
                self.record(trial, _error_text(trial))
            elif (trial.last_result or {}).get("final"):
                self.record(trial, None)
            elif timed_out:
                self.record(trial, None, stopped_by="time_limit")
            else:  # interrupted: the record stays RUNNING so that --resume continues it in place
                self.ledger.report(number, None, None, {"status": TrialStatus.INTERRUPTED})

    # ------------------------------------------------------------------ writing
    def record(self, trial: Any, error: str | None, stopped_by: str = "early_stopping") -> None:
        from optuna.trial import TrialState  # lazy: optuna is a heavy optional package

        number = trial_number(trial)
        if number is None or not self.ledger.is_running(number):
            return
        config = trial.config or {}
        result = dict(trial.last_result or {})
        attrs: dict[str, Any] = {"tune_trial_id": trial.trial_id, "epochs": result.get("epoch"),
                                 "duration_s": result.get("time_total_s")}
        attrs.update({k: v for k, v in measured_attrs(result, config.get("recipe")).items() if k not in attrs})
        values = None
        if error is not None:
            state, attrs["status"], attrs["error"] = TrialState.FAIL, TrialStatus.FAILED, error
        elif result.get("final"):
            values = [result.get(m) for m in self.metrics]
            if any(_finite(v) is None for v in values):
                state, values = TrialState.FAIL, None
                attrs["status"] = TrialStatus.FAILED
                attrs["error"] = f"objective value missing or not finite: {dict(zip(self.metrics, [result.get(m) for m in self.metrics]))}"
            else:
                state, attrs["status"] = TrialState.COMPLETE, TrialStatus.COMPLETE
        elif result.get("epoch"):
            state, attrs["status"], attrs["stopped_by"] = TrialState.PRUNED, TrialStatus.STOPPED, stopped_by
        else:
            state, attrs["status"], attrs["stopped_by"] = TrialState.FAIL, TrialStatus.NOT_STARTED, stopped_by
            attrs["error"] = f"{stopped_by}: stopped before its first epoch"
        value = _finite(result.get(self.scheduler_metric))
        if result.get("final") and value is not None:
            self.ledger.report(number, result.get("epoch"), value, {})  # the last epoch's value too
        if state != TrialState.COMPLETE and config.get("run_dir"):
            self.keep_partial(Path(config["run_dir"]), trial.trial_id, attrs)
        self.ledger.finish(number, state, values, attrs)

    def keep_partial(self, run_dir: Path, tune_id: str, attrs: dict[str, Any]) -> None:
        """A stopped or failed trial's folder: ``history.csv`` (its epochs so far) and ``stopped.json``."""
        import pandas as pd

        rows = [r for r in self.histories.get(tune_id, []) if not r.get("final")]
        run_dir.mkdir(parents=True, exist_ok=True)
        if rows and not (run_dir / HISTORY_FILE).is_file():
            pd.DataFrame(rows).to_csv(run_dir / HISTORY_FILE, index=False)
        (run_dir / STOPPED_FILE).write_text(json.dumps(attrs, indent=2, default=str) + "\n")


class FailureGuard(Callback, Stopper):
    """Stops the whole search when the first ``limit`` finished trials all failed (a broken setup)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.failures = 0
        self.successes = 0
        self.first_error: str | None = None
        self.tripped = False

    def get_state(self) -> dict[str, Any]:
        return {"failures": self.failures, "successes": self.successes, "first_error": self.first_error}

    def set_state(self, state: dict[str, Any]) -> None:
        self.failures = state.get("failures", 0)
        self.successes = state.get("successes", 0)
        self.first_error = state.get("first_error")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.successes += 1

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.failures += 1
        if self.first_error is None:
            self.first_error = f"trial {trial.trial_id}: {_error_text(trial)}"
        if self.successes == 0 and self.failures >= self.limit:
            self.tripped = True

    # Stopper
    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.tripped
