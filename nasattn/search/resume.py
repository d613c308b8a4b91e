"""A resumed search rebuilt from what the run folder holds as data: the Optuna study and checkpoints.

Nothing in the folder is unpickled. The persistent study holds every trial of the run (params, state,
intermediate values per epoch); from it a resume builds a new searcher (finished trials taught to the
sampler, unfinished ones suggested again), finds each unfinished trial's latest checkpoint (torch
``weights_only`` files, loaded by the trainable), and feeds the recorded values through a new
early-stopping scheduler so that it makes the decisions the uninterrupted search would have made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, MedianStoppingRule

from nasattn.schema import VAL_ACCURACY_LAST
from nasattn.search.recorder import trial_number
from nasattn.tune.runner import latest_checkpoint

TIME_ATTR = "epoch"  # the schedulers' clock: a resumed trial's epochs continue, Tune's iteration count does not
SCHEDULER_METRIC = VAL_ACCURACY_LAST


def run_records(study: Any, run_id: str) -> list[Any]:
    """This run's FrozenTrials in the persistent study, by the sampler's order."""
    mine = [t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("run_id") == run_id and t.user_attrs.get("sampler_number") is not None]
    return sorted(mine, key=lambda t: int(t.user_attrs["sampler_number"]))


def unfinished_checkpoints(exp_dir: Path, records: list[Any]) -> dict[int, str]:
    """Study number -> latest checkpoint folder, for the unfinished records that have one."""
    out: dict[int, str] = {}
    for t in records:
        if not t.state.is_finished():
            ckpt = latest_checkpoint(exp_dir, t.number)
            if ckpt is not None:
                out[t.number] = str(ckpt)
    return out


# ------------------------------------------------------------------------------ early stopping
class _Recorded:
    """A stand-in for a Tune trial of an earlier session (the schedulers read only its id and config)."""

    def __init__(self, number: int) -> None:
        self.trial_id = f"recorded-{number}"
        self.config = {"optuna": {"number": number}}
        self.status = "TERMINATED"

    def __repr__(self) -> str:
        return self.trial_id


class _NoTrials:
    """The controller the schedulers see during a replay: no live trials to pause or stop."""

    def get_live_trials(self) -> list:
        return []


def _result(epoch: int, value: float) -> dict[str, Any]:
    return {TIME_ATTR: epoch, SCHEDULER_METRIC: value}


def replay_finished(scheduler: Any, records: list[Any]) -> int:
    """Feed finished records' per-epoch values through ``scheduler``'s public hooks (add, result, then
    complete or error), as Tune fed them; the decisions it returns are past and ignored. Returns how many."""
    controller, fed = _NoTrials(), 0
    for t in records:
        if not t.state.is_finished() or not t.intermediate_values:
            continue
        stand_in = _Recorded(t.number)
        scheduler.on_trial_add(controller, stand_in)
        steps = sorted(t.intermediate_values.items())
        for epoch, value in steps:
            scheduler.on_trial_result(controller, stand_in, _result(epoch, value))
        if t.state.name == "FAIL":
            scheduler.on_trial_error(controller, stand_in)
        else:
            scheduler.on_trial_complete(controller, stand_in, _result(*steps[-1]))
        fed += 1
    return fed


class ReplayOnAdd:
    """Scheduler mixin: a trial resumed from an earlier session gets its recorded epochs replayed when
    Tune adds it, under its new Tune trial id, before it reports the epochs after its checkpoint."""

    history: dict[int, dict[int, float]]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        number = trial_number(trial)
        values = self.history.pop(number, None) if number is not None else None
        for epoch, value in sorted((values or {}).items()):
            super().on_trial_result(tune_controller, trial, _result(epoch, value))  # type: ignore[misc]


class ResumedASHA(ReplayOnAdd, AsyncHyperBandScheduler):
    """ASHA continuing a run (see :class:`ReplayOnAdd`)."""


class ResumedMedian(ReplayOnAdd, MedianStoppingRule):
    """The median stopping rule continuing a run (see :class:`ReplayOnAdd`)."""


# Schedulers whose state is rebuilt from recorded epochs. HyperBand is not: its synchronous brackets pause
# and stop live trials through the controller, which trials of an earlier session cannot stand in for.
RESUMED = {AsyncHyperBandScheduler: ResumedASHA, MedianStoppingRule: ResumedMedian}


def resume_scheduler(scheduler: Any, records: list[Any], resume_from: dict[int, str]) -> Any:
    """Give a ``Resumed*`` scheduler the run so far: finished records replayed now, trials resumed from
    a checkpoint replayed when they start again. Returns it."""
    scheduler.history = {t.number: dict(t.intermediate_values) for t in records
                         if t.number in resume_from and t.intermediate_values}
    replay_finished(scheduler, records)
    return scheduler
