"""Optuna trials -> flat rows (the one place that defines trials.csv's columns).

Columns, in order: ``number`` (the Optuna trial number; the run folder is ``trials/<number>``),
``state`` (Optuna: COMPLETE, PRUNED, FAIL, RUNNING), ``status`` (COMPLETE, STOPPED, FAILED, RUNNING, INTERRUPTED,
NOT_STARTED), ``run_dir``, ``tune_trial_id``, ``seed_point``, ``epochs``, ``duration_s``,
``datetime_start``, ``datetime_complete``, ``stopped_by`` (early_stopping or time_limit), ``objective.<metric>`` per objective,
``pareto`` (multi-objective: on Optuna's Pareto front), ``param.<name>`` per sampled parameter, then
the measured user attributes (``last_lr``, ``test_accuracy``, ...), and ``error`` last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

FIRST = ("run_dir", "tune_trial_id", "seed_point", "epochs", "duration_s")
LAST = ("error",)
SKIP = ("arch", "recipe", "run_id", "sampler_number", "status", "stopped_by")


def pareto_numbers(study: optuna.Study) -> set[int]:
    """Numbers of the trials on the study's Pareto front (Optuna's ``best_trials``; empty when none)."""
    try:
        return {t.number for t in study.best_trials}
    except Exception:  # noqa: BLE001 - no complete trial yet
        return set()


def study_rows(study: optuna.Study, metric_names: list[str]) -> list[dict[str, Any]]:
    """One row per trial of ``study`` (see the module docstring for the columns)."""
    front = pareto_numbers(study) if len(metric_names) > 1 else set()
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        row: dict[str, Any] = {"number": t.number, "state": t.state.name,
                               "status": a.get("status") or t.state.name}
        for k in FIRST:
            row[k] = a.get(k)
        row["datetime_start"] = t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None
        row["datetime_complete"] = t.datetime_complete.isoformat(timespec="seconds") if t.datetime_complete else None
        row["stopped_by"] = a.get("stopped_by")
        for i, m in enumerate(metric_names):
            row[f"objective.{m}"] = t.values[i] if t.values and i < len(t.values) else None
        if len(metric_names) > 1:
            row["pareto"] = t.number in front
        for k, v in t.params.items():
            row[f"param.{k}"] = v
        for k, v in a.items():
            if k not in row and k not in FIRST and k not in LAST and k not in SKIP:
                row[k] = v
        for k in LAST:
            row[k] = a.get(k)
        rows.append(row)
    return rows
