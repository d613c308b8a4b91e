"""A resumed search rebuilt from what the run folder holds as data: the Optuna study and checkpoints.

Nothing in the folder is unpickled. The persistent study holds every trial of the run (params, state,
intermediate values per epoch); from it a resume builds a new searcher (finished trials taught to the
sampler, unfinished ones suggested again), finds each unfinished trial's latest checkpoint (torch
``weights_only`` files, loaded by the trainable), and feeds the recorded values through a new
early-stopping scheduler so that it makes the decisions the uninterrupted search would have made.

Hyperband's brackets are synchronous (a trial waits at a rung until its bracket-mates reach it) and a
bracket takes trials in the order they were added, so its state depends on when trials were added and
ended, not only on their values. :class:`ResumedHyperBand` rebuilds it by replaying the records in the
order of their recorded times (``datetime_start``: added when suggested; ``datetime_complete``: ended),
advancing a trial's bracket-mates to its rung only when its end needs them there, through the
scheduler's public hooks (``on_trial_add``/``on_trial_result``/``on_trial_complete``/``on_trial_error``/
``on_trial_remove``). Not public in Ray 2.60, and used here: ``HyperBandScheduler._trial_info`` (trial ->
bracket) and ``_process_bracket``, and ``_Bracket._live_trials``/``_all_trials``/``trials_to_unpause``/
``continue_trial``/``current_trials``, to put a trial that Tune starts again under a new id in the place of
its stand-in, and to count a trial that waited at a rung with the rung's recorded value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, HyperBandScheduler, MedianStoppingRule, TrialScheduler

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


class _Stand(_Recorded):
    """A recorded trial replayed through HyperBand: its per-epoch values and a Tune-like status."""

    def __init__(self, record: Any) -> None:
        super().__init__(record.number)
        self.record, self.status, self.is_saving = record, Trial.RUNNING, False
        self.steps = sorted(record.intermediate_values.items())
        self.fed = 0

    @property
    def last(self) -> dict[str, Any]:
        return _result(*self.steps[self.fed - 1]) if self.fed else _result(0, float("nan"))


class _ReplayController(_NoTrials):
    """The controller HyperBand sees during a replay: a stop of a paused stand-in is done as Tune does it."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def stop_trial(self, trial: _Stand) -> None:
        if trial.status == Trial.PAUSED:
            self.scheduler.on_trial_remove(self, trial)
        elif trial.status == Trial.RUNNING:
            self.scheduler.on_trial_complete(self, trial, trial.last)
        trial.status = Trial.TERMINATED


class ResumedHyperBand(ReplayOnAdd, HyperBandScheduler):
    """HyperBand continuing a run: :meth:`rebuild` replays the recorded trials into its brackets; a trial
    Tune starts again takes its stand-in's place (same bracket, same recorded result). One that was
    waiting at a rung when the run stopped keeps that rung's value and pauses at its first new result."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history = {}
        self._stands: dict[int, _Stand] = {}
        self._doomed: set[int] = set()  # unfinished trials the replay stopped: stopped again when they return
        self._returning: list[Any] = []  # doomed trials Tune has added again
        self._waiting: dict[Any, dict[str, Any]] = {}  # resumed trials that waited at a rung: its result
        self._controller = _ReplayController(self)

    def rebuild(self, records: list[Any]) -> None:
        """Replay ``records`` (adds and ends in recorded time order); unfinished ones stay as stand-ins."""
        # at equal times an end comes first: a trial is added when an ended one frees its place
        events = [(t.datetime_start, 1, t) for t in records if t.datetime_start is not None]
        events += [(t.datetime_complete, 0, t) for t in records if t.state.is_finished() and t.datetime_complete]
        for _, kind, t in sorted(events, key=lambda e: (e[0], e[1], e[2].number)):
            if kind == 1:
                self._stands[t.number] = _Stand(t)
                HyperBandScheduler.on_trial_add(self, self._controller, self._stands[t.number])
            else:
                self._end(self._stands[t.number])
        unfinished = [s for s in self._stands.values() if not s.record.state.is_finished()]
        while any(self._step(s) for s in unfinished if self._live(s)):
            pass  # their recorded epochs, as far as their bracket lets them go
        self._doomed = {s.record.number for s in unfinished if not self._live(s)}
        self._stands = {s.record.number: s for s in unfinished if self._live(s)}

    def _live(self, s: _Stand) -> bool:
        return s.status not in (Trial.TERMINATED, Trial.ERROR)

    def _bracket(self, trial: Any) -> Any:
        return self._trial_info[trial][0]

    def _step(self, s: _Stand) -> bool:
        """Feed ``s``'s next recorded epoch unless it waits at a rung; whether it was fed."""
        if s.fed >= len(s.steps) or (s.status == Trial.PAUSED and s not in self._bracket(s).trials_to_unpause):
            return False
        s.status, s.fed = Trial.RUNNING, s.fed + 1
        action = HyperBandScheduler.on_trial_result(self, self._controller, s, s.last)
        if action == TrialScheduler.PAUSE:
            s.status = Trial.PAUSED
        elif action == TrialScheduler.STOP:
            self._controller.stop_trial(s)
        return True

    def _end(self, s: _Stand) -> None:
        """Replay up to ``s``'s recorded end: its epochs, and its bracket-mates' up to its rung when it waits."""
        while self._live(s):
            if self._step(s):
                continue
            bracket = self._bracket(s)
            waits = s.status == Trial.PAUSED and s not in bracket.trials_to_unpause
            if not waits or not any([self._step(m) for m in bracket.current_trials() if m is not s and self._live(m)]):
                break
        if not self._live(s):
            return
        if s.record.state.name == "FAIL":
            HyperBandScheduler.on_trial_error(self, self._controller, s)
        else:
            HyperBandScheduler.on_trial_complete(self, self._controller, s, s.last)
        s.status = Trial.TERMINATED

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        stand = self._stands.pop(trial_number(trial), None) if trial_number(trial) is not None else None
        if stand is None:
            if trial_number(trial) in self._doomed:
                self._returning.append(trial)  # in no bracket: started by choose_trial_to_run, stopped at once
            else:
                HyperBandScheduler.on_trial_add(self, tune_controller, trial)
            return
        bracket, band = self._trial_info.pop(stand)
        bracket._live_trials = {trial if t is stand else t: r for t, r in bracket._live_trials.items()}
        bracket._all_trials = [trial if t is stand else t for t in bracket._all_trials]
        if stand in bracket.trials_to_unpause:
            bracket.trials_to_unpause.discard(stand)
        elif not bracket.continue_trial(trial):
            # it waited at this rung: its bracket now waits for it to report, and then it counts with
            # the rung's recorded value (Tune starts it again; it cannot stay paused as it was)
            self._waiting[trial] = bracket._live_trials[trial]
            bracket._live_trials[trial] = _result(*stand.steps[stand.fed - 2]) if stand.fed >= 2 else None
        self._trial_info[trial] = bracket, band

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if trial_number(trial) in self._doomed:
            return TrialScheduler.STOP
        if trial in self._waiting:
            bracket = self._bracket(trial)
            bracket._live_trials[trial] = self._waiting.pop(trial)
            return self._process_bracket(tune_controller, bracket)
        return super().on_trial_result(tune_controller, trial, result)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        pending = [t for t in self._returning if t.status == Trial.PENDING]
        return pending[0] if pending else super().choose_trial_to_run(tune_controller)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        if trial in self._trial_info:
            super().on_trial_remove(tune_controller, trial)


# Schedulers whose state is rebuilt from recorded epochs (ASHA, median) or replayed trials (HyperBand).
RESUMED = {AsyncHyperBandScheduler: ResumedASHA, MedianStoppingRule: ResumedMedian, HyperBandScheduler: ResumedHyperBand}


def resume_scheduler(scheduler: Any, records: list[Any], resume_from: dict[int, str]) -> Any:
    """Give a ``Resumed*`` scheduler the run so far: HyperBand's brackets rebuilt from every record;
    for the others, finished records replayed now and trials resumed from a checkpoint replayed when
    they start again. Returns it."""
    if isinstance(scheduler, ResumedHyperBand):
        scheduler.rebuild(records)
        return scheduler
    scheduler.history = {t.number: dict(t.intermediate_values) for t in records
                         if t.number in resume_from and t.intermediate_values}
    replay_finished(scheduler, records)
    return scheduler
