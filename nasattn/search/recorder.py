"""Finished Tune trials -> a persistent Optuna study (SQLite, any SQLAlchemy URL, or a journal file).

Idempotent by Tune trial id: a trial re-run after a crash (or reported twice) is recorded once.
States: COMPLETE (trained to the end: the objective values), PRUNED (stopped early by the
scheduler: intermediate validation accuracies and the epoch it reached), FAIL (the error text).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper

# Metrics that are not copied into user attributes (Tune bookkeeping or big values).
_SKIP = {
    "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration", "trial_id",
    "date", "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore", "config",
    "experiment_tag", "time_this_iter_s", "final",
}


def storage_url(storage: str | None, output: Path) -> str:
    """The storage spec of a study: default ``sqlite:///<output>/study.db``."""
    if storage is None:
        return f"sqlite:///{(output / 'study.db').resolve()}"
    if storage.endswith((".log", ".jsonl")) and "://" not in storage and not storage.startswith("journal:"):
        return f"journal:{Path(storage).expanduser().resolve()}"
    if storage.startswith("journal:"):
        return f"journal:{Path(storage[len('journal:'):]).expanduser().resolve()}"
    return storage


def open_storage(url: str):
    """An Optuna storage object for ``url`` (``journal:PATH`` = a JournalStorage file)."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    return optuna.storages.RDBStorage(url, heartbeat_interval=None, engine_kwargs=_engine_kwargs(url))


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def create_or_load_study(url: str, name: str, directions: list[str]):
    """Create the study once (before any worker touches the storage) or load it; checks directions."""
    import optuna

    from nasattn.config import ConfigError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        storage = open_storage(url)
    except Exception as e:  # noqa: BLE001 - a bad URL, a missing driver, a refused connection
        pg = isinstance(e, ImportError) and url.startswith(("postgresql://", "postgresql+psycopg2://"))
        hint = "; install the PostgreSQL driver: pip install psycopg2-binary" if pg else ""
        raise ConfigError(f"storage {redact(url)}: cannot open: {type(e).__name__}: {e}{hint}") from None
    study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True)
    if [d.name.lower() for d in study.directions] != [d.lower() for d in directions]:
        raise ConfigError(
            f"storage {redact(url)}: study {name!r} exists with directions "
            f"{[d.name.lower() for d in study.directions]}, not {directions}; use another study_name"
        )
    return study


def redact(url: str) -> str:
    """Hide a password in a database URL for messages."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def _error_text(trial: Any) -> str:
    """The trial's error: the ERROR file its run wrote, else Tune's error trace (the last error line)."""
    from nasattn.tune.trainable import ERROR_FILE

    runs_root = (trial.config or {}).get("runs_root")
    if runs_root and (Path(runs_root) / trial.trial_id / ERROR_FILE).is_file():
        return (Path(runs_root) / trial.trial_id / ERROR_FILE).read_text().strip()[:2000]
    text = None
    try:
        text = trial.get_error()
    except Exception:  # noqa: BLE001
        text = None
    if not text:
        return "unknown error (see the trial's folder under tune/)"
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    # The last line of a traceback is "ExcType: message"; keep it first, then a short tail.
    last = lines[-1].strip() if lines else "unknown error"
    for ln in reversed(lines):
        if "Error" in ln or "Exception" in ln:
            last = ln.strip()
            break
    return last[:2000]


class StudyRecorder(Callback):
    """Writes every finished Tune trial into the Optuna study ``study_name`` at ``url``."""

    def __init__(self, url: str, study_name: str, metrics: list[str], scheduler_metric: str = "val_accuracy") -> None:
        self.url = url
        self.study_name = study_name
        self.metrics = metrics
        self.scheduler_metric = scheduler_metric
        self.histories: dict[str, dict[int, float]] = {}
        self._study = None
        self._recorded: set[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_study"] = None
        state["_recorded"] = None
        return state

    def get_state(self) -> dict[str, Any]:
        return {"histories": self.histories}

    def set_state(self, state: dict[str, Any]) -> None:
        self.histories = state.get("histories", {})

    @property
    def study(self):
        if self._study is None:
            import optuna

            self._study = optuna.load_study(study_name=self.study_name, storage=open_storage(self.url))
        return self._study

    def recorded_ids(self) -> set[str]:
        if self._recorded is None:
            self._recorded = {
                t.user_attrs["tune_trial_id"] for t in self.study.get_trials(deepcopy=False)
                if "tune_trial_id" in t.user_attrs
            }
        return self._recorded

    # ------------------------------------------------------------------ Tune events
    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.scheduler_metric)
        epoch = result.get("epoch") or result.get("training_iteration")
        if isinstance(value, (int, float)) and epoch is not None and math.isfinite(value):
            self.histories.setdefault(trial.trial_id, {})[int(epoch)] = float(value)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.record(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.record(trial, _error_text(trial))

    # ------------------------------------------------------------------ writing
    def record(self, trial: Any, error: str | None) -> None:
        import optuna
        from optuna.distributions import json_to_distribution
        from optuna.trial import TrialState

        if trial.trial_id in self.recorded_ids():
            return
        config = trial.config or {}
        meta = config.get("optuna") or {}
        result = dict(trial.last_result or {})
        params = dict(meta.get("params") or {})
        dists = {k: json_to_distribution(v) for k, v in (meta.get("distributions") or {}).items()}
        history = self.histories.get(trial.trial_id, {})
        attrs: dict[str, Any] = {
            "tune_trial_id": trial.trial_id,
            "searcher_number": meta.get("number"),
            "seed_point": meta.get("seed_point"),
            "epochs": result.get("epoch"),
            "duration_s": result.get("time_total_s"),
            "arch": json.dumps(config.get("arch")),
            "recipe": json.dumps(config.get("recipe")),
        }
        for k, v in result.items():
            if k in _SKIP or k in attrs or isinstance(v, (dict, list)):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            attrs[k] = v
        values = None
        if error is not None:
            state = TrialState.FAIL
            attrs["status"] = "FAILED"
            attrs["error"] = error
        elif result.get("final"):
            values = [result.get(m) for m in self.metrics]
            if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
                state, values = TrialState.FAIL, None
                attrs["status"] = "FAILED"
                attrs["error"] = f"objective value missing or not finite: {dict(zip(self.metrics, [result.get(m) for m in self.metrics]))}"
            else:
                state = TrialState.COMPLETE
                attrs["status"] = "COMPLETE"
        else:
            state = TrialState.PRUNED
            attrs["status"] = "STOPPED" if result else "NOT_STARTED"
        frozen = optuna.trial.create_trial(
            state=state,
            values=values,
            params=params,
            distributions=dists,
            user_attrs=attrs,
            intermediate_values={int(k): v for k, v in history.items()},
        )
        self.study.add_trial(frozen)
        self.recorded_ids().add(trial.trial_id)


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
