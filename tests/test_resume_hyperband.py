"""Hyperband on resume: its brackets rebuilt from the recorded trials make the decisions the
uninterrupted search makes (the same stopped trials), checked against a small stand-in of Tune's
controller driving Ray's HyperBandScheduler with several trials at once."""

from __future__ import annotations

import datetime as dt
import math

import optuna
import pytest
from ray.tune.schedulers import HyperBandScheduler, TrialScheduler

from nasattn.search.resume import RESUMED, TIME_ATTR, resume_scheduler

State = optuna.trial.TrialState
MAX_T = 4  # eta 2: brackets of 3 trials (no rung), 3 (rung at 2), 4 (rungs at 1 and 2)
EPOCH0 = dt.datetime(2026, 1, 1)
# val_accuracy per epoch, and seconds per epoch, of trials 0..13 (good ones learn, bad ones do not)
CURVES = {n: [round(0.1 + 0.2 * e * (n % 3 != 1) + 0.01 * n, 3) for e in range(MAX_T)] for n in range(14)}
SECONDS = {n: 1.0 + 0.37 * (n % 4) for n in range(14)}


def _hyperband(resumed: bool = False) -> HyperBandScheduler:
    cls = RESUMED[HyperBandScheduler] if resumed else HyperBandScheduler
    return cls(time_attr=TIME_ATTR, metric="val_accuracy", mode="max", max_t=MAX_T, reduction_factor=2)


class _Trial:
    def __init__(self, number: int, tune_id: str, first_epoch: int) -> None:
        self.trial_id, self.config, self.status, self.is_saving = tune_id, {"optuna": {"number": number}}, "PENDING", False
        self.number, self.epoch, self.due, self.seen, self.resumed_due = number, first_epoch, math.inf, {}, None

    def result(self) -> dict:
        return {TIME_ATTR: self.epoch, "val_accuracy": CURVES[self.number][self.epoch - 1]}


class _Tune:
    """Tune's controller as HyperBand sees it: at most ``concurrency`` live trials (paused ones count, as
    under ConcurrencyLimiter), trials started by ``choose_trial_to_run``, epochs on a simulated clock; every
    trial recorded as an Optuna FrozenTrial as nasattn's recorder does (opened at add, finished at its end)."""

    def __init__(self, scheduler, concurrency: int = 6, clock: float = 0.0, session: str = "s1"):
        self.scheduler, self.concurrency, self.clock, self.session = scheduler, concurrency, clock, session
        self.records: dict[int, optuna.trial.FrozenTrial] = {}
        self.live: list[_Trial] = []
        self.started: dict[int, float] = {}
        self.stopped: set[int] = set()

    def get_live_trials(self) -> list:
        return list(self.live)

    def stop_trial(self, trial: _Trial) -> None:
        if trial.status == "PAUSED":
            self.scheduler.on_trial_remove(self, trial)
        else:
            self.scheduler.on_trial_complete(self, trial, trial.result())
        self._end(trial, State.PRUNED)

    def _end(self, trial: _Trial, state) -> None:
        if state == State.PRUNED:
            self.stopped.add(trial.number)
        trial.status = "TERMINATED"
        self.live.remove(trial)
        self._record(trial, state, self.clock)

    def _record(self, trial: _Trial, state, end: float | None) -> None:
        record = optuna.trial.create_trial(state=state, intermediate_values=trial.seen,
                                           value=trial.seen[max(trial.seen)] if state == State.COMPLETE else None)
        record.datetime_start = EPOCH0 + dt.timedelta(seconds=self.started[trial.number])
        record.datetime_complete = None if end is None else EPOCH0 + dt.timedelta(seconds=end)
        record.number = trial.number
        self.records[trial.number] = record

    def run(self, queue: list[tuple[int, int, dict, float]], until: float = math.inf) -> list[_Trial]:
        """Run ``queue`` (number, first epoch, recorded values, end of its first epoch or None) until done or the clock passes
        ``until``; returns the trials still live then (their records are left to the caller)."""
        queue = list(queue)
        while True:
            while len(self.live) < self.concurrency and queue:
                number, first, seen, due = queue.pop(0)
                trial = _Trial(number, f"{self.session}-{number}", first)
                trial.seen, trial.resumed_due = dict(seen), due
                self.started[number] = self.clock
                self.live.append(trial)
                self.scheduler.on_trial_add(self, trial)
            while (chosen := self.scheduler.choose_trial_to_run(self)) is not None:
                chosen.status, chosen.due = "RUNNING", chosen.resumed_due or self.clock + SECONDS[chosen.number]
                chosen.resumed_due = None
            running = [t for t in self.live if t.status == "RUNNING"]
            if not running:
                assert not self.live and not queue, "stuck"
                return []
            trial = min(running, key=lambda t: (t.due, t.number))
            if trial.due > until:
                return list(self.live)
            self.clock = trial.due
            trial.seen[trial.epoch] = trial.result()["val_accuracy"]
            action = self.scheduler.on_trial_result(self, trial, trial.result())
            if trial.epoch == MAX_T:
                self.scheduler.on_trial_complete(self, trial, trial.result())
                self._end(trial, State.COMPLETE)
            elif action == TrialScheduler.STOP:
                self.stop_trial(trial)
            else:
                trial.epoch += 1
                if action == TrialScheduler.PAUSE:
                    trial.status = "PAUSED"
                else:
                    trial.due = self.clock + SECONDS[trial.number]


def _uninterrupted() -> _Tune:
    tune = _Tune(_hyperband())
    tune.run([(n, 1, {}, None) for n in CURVES])
    return tune


def _interrupted_then_resumed(until: float, rebuild: bool) -> set[int]:
    """Stop the search at ``until`` s (Ctrl-C), then resume it: the trials stopped in both sessions."""
    first = _Tune(_hyperband())
    left = first.run([(n, 1, {}, None) for n in CURVES], until=until)
    for trial in left:  # left RUNNING, checkpointed
        first._record(trial, State.RUNNING, None)
    # Timing as if the interrupt cost nothing, so that both searches see trials added and ended in the same
    # order: the epoch under way ends when it would have; a trial that waited at a rung (Tune starts it
    # again) reports that rung again at once
    paused = {t.number for t in left if t.status == "PAUSED"}
    due = {t.number: first.clock if t.number in paused else t.due for t in left}
    records = sorted(first.records.values(), key=lambda t: t.datetime_start)
    unfinished = [t for t in records if not t.state.is_finished()]
    assert len(unfinished) >= 2  # the interrupt caught trials mid-way
    scheduler = _hyperband(resumed=rebuild)
    if rebuild:
        resume_scheduler(scheduler, records, {t.number: "checkpoint" for t in unfinished})
    second = _Tune(scheduler, clock=first.clock, session="s2")
    # as nasattn's searcher: the unfinished trials first, from the epoch after their checkpoint, then new ones
    queue = [(t.number, max(t.intermediate_values, default=0) + (t.number not in paused), t.intermediate_values,
              due[t.number]) for t in unfinished]
    second.run(queue + [(n, 1, {}, None) for n in CURVES if n not in first.records])
    return first.stopped | second.stopped


def test_an_uninterrupted_hyperband_stops_some_trials_and_not_others():
    tune = _uninterrupted()
    assert tune.stopped and tune.stopped != set(CURVES)  # the comparison below can tell
    assert len(tune.records) == len(CURVES)


UNTIL = (3.5, 5.2, 7.9, 9.3)  # Ctrl-C at these seconds of the simulated clock


@pytest.mark.parametrize("until", UNTIL)
def test_a_resumed_hyperband_stops_the_trials_the_uninterrupted_one_stops(until):
    assert _interrupted_then_resumed(until, rebuild=True) == _uninterrupted().stopped


def test_a_hyperband_resumed_with_fresh_brackets_stops_other_trials():
    assert any(_interrupted_then_resumed(until, rebuild=False) != _uninterrupted().stopped for until in UNTIL)


class _Recorder:
    def __init__(self) -> None:
        self.stopped: list[int] = []

    def get_live_trials(self) -> list:
        return []

    def stop_trial(self, trial: _Trial) -> None:
        self.stopped.append(trial.number)


def test_a_trial_that_waited_at_a_rung_counts_there_with_its_recorded_value():
    first = _Tune(_hyperband())
    left = {t.number: t for t in first.run([(n, 1, {}, None) for n in CURVES], until=3.5)}
    for trial in left.values():
        first._record(trial, State.RUNNING, None)
    assert left[4].status == left[5].status == "PAUSED" and left[3].status == "RUNNING"  # 4, 5 wait at rung 2 for 3
    scheduler = resume_scheduler(_hyperband(resumed=True), list(first.records.values()), {})
    tune, trials = _Recorder(), {n: _Trial(n, f"s2-{n}", 3) for n in (3, 4, 5)}
    for trial in trials.values():
        scheduler.on_trial_add(tune, trial)
        trial.status = "RUNNING"  # Tune starts every resumed trial again
    # trial 4 reports the epoch after its rung, better than everyone: it still counts with its rung value
    assert scheduler.on_trial_result(tune, trials[4], {TIME_ATTR: 3, "val_accuracy": 0.99}) == TrialScheduler.PAUSE
    trials[4].status = "PAUSED"
    scheduler.on_trial_result(tune, trials[5], {TIME_ATTR: 3, "val_accuracy": 0.35})
    trials[5].status = "PAUSED"
    assert tune.stopped == []  # the rung waits for trial 3
    assert scheduler.on_trial_result(tune, trials[3], {TIME_ATTR: 2, "val_accuracy": CURVES[3][1]}) == TrialScheduler.CONTINUE
    assert tune.stopped == [4]  # the halving at rung 2 of the uninterrupted search: 0.14 is the worst


def test_an_unfinished_trial_the_rebuild_stops_is_started_and_stopped_at_its_first_result():
    records = []
    for number, values in enumerate([{}, {}, {1: 0.9}, {1: 0.1}]):  # 0, 1: bracket without rungs; 2, 3: rung at 1
        record = optuna.trial.create_trial(state=State.RUNNING, intermediate_values=values)
        record.number, record.datetime_start = number, EPOCH0 + dt.timedelta(seconds=number)
        records.append(record)
    scheduler = RESUMED[HyperBandScheduler](time_attr=TIME_ATTR, metric="val_accuracy", mode="max", max_t=2,
                                            reduction_factor=2)
    resume_scheduler(scheduler, records, {})  # both reached rung 1 before the interrupt: 3 is the worse
    tune, trials = _Recorder(), [_Trial(n, f"s2-{n}", 2) for n in range(4)]
    for trial in trials:
        scheduler.on_trial_add(tune, trial)
    assert scheduler.choose_trial_to_run(tune) is trials[3]  # Tune must start it (it waits in no bracket)
    trials[3].status = "RUNNING"
    assert scheduler.on_trial_result(tune, trials[3], {TIME_ATTR: 2, "val_accuracy": 0.99}) == TrialScheduler.STOP
    scheduler.on_trial_complete(tune, trials[3], {TIME_ATTR: 2, "val_accuracy": 0.99})
    trials[3].status = "TERMINATED"
    assert scheduler.choose_trial_to_run(tune) in trials[:3]


@pytest.mark.slow
@pytest.mark.timeout(900)  # two searches through Ray
def test_an_interrupted_hyperband_search_resumes_through_tune_to_the_end(tmp_path):
    """The rebuilt scheduler under Ray Tune itself: real trials take their stand-ins' places, paused and
    stopped ones included, and the resumed search finishes every trial (no trial left waiting). The search is
    stopped with SIGTERM: exit 143, one resume line, outputs written (test_resume.py's search gets SIGINT)."""
    import signal
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_interrupts import _signal_when, _start, check_interrupted_search
    from test_search import _rows, _run, _study

    good = {"stages.width.base": 8, "attention": "none", "recipe.lr": 0.01}
    study = _study(tmp_path, seeds={"points": [good, good, {**good, "recipe.lr": 1.0e8}]},
                   early_stopping={"type": "hyperband", "reduction_factor": 2},
                   budget={"trials": 4, "epochs": 4, "max_steps_per_epoch": 2},
                   resources={"cpus_per_trial": 1, "max_concurrent": 4}, report=False)
    out, log = tmp_path / "out", tmp_path / "search.log"
    proc = _start(["search", str(study), "--no-live"], tmp_path, log)
    # interrupt once two checkpoints exist (trials mid-way or waiting at a rung)
    text = _signal_when(lambda: len(list((out / "tune").glob("*/checkpoint_*"))) >= 2, proc, log, signal.SIGTERM)
    assert proc.returncode == 143, text
    check_interrupted_search(text, out, f"nasattn search {study}")
    res = _run(["search", str(study), "--resume", "--no-live"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "from a checkpoint" in res.stdout, res.stdout
    rows = _rows(out)  # a trial at lr 1e8 may diverge (FAIL): what matters is that none is left waiting
    assert len(rows) == 4 and {r["state"] for r in rows} <= {"COMPLETE", "PRUNED", "FAIL"}, rows
