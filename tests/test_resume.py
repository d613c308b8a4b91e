"""Resume rebuilt from the run folder's data: the searcher from the Optuna study, the early-stopping
rungs from the recorded epochs, checkpoints found on disk; secrets kept out of every file; folders
that move; nothing unpickled from the folder."""

from __future__ import annotations

import json
import os
import pickle
import stat
import sys
from pathlib import Path

import optuna
import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler, MedianStoppingRule

from nasattn.config import ConfigError
from nasattn.search.recorder import StudyLedger
from nasattn.search.resume import RESUMED, TIME_ATTR, resume_scheduler, run_records, unfinished_checkpoints
from nasattn.search.searcher import SpaceSearch, TrialConfigFactory
from nasattn.search.storage import create_or_load_study
from nasattn.search.study import load_study

sys.path.insert(0, str(Path(__file__).parent))
from test_search import _study

State = optuna.trial.TrialState


# ------------------------------------------------------------------------------ the searcher
def _search(tmp_path: Path, ledger: StudyLedger, records=None, seeds=None) -> SpaceSearch:
    loaded = load_study(_study(tmp_path))
    factory = TrialConfigFactory(loaded.space, {"data": "eurosat-mini"}, {}, epochs=2)
    return SpaceSearch(factory, "val_accuracy", "max", optuna.samplers.RandomSampler(seed=3), seeds, ledger=ledger,
                       runs_root=tmp_path / "trials", records=records,
                       resume_from={2: str(tmp_path / "tune" / "2-x" / "checkpoint_000001")} if records else None)


def test_a_rebuilt_searcher_continues_the_run_from_the_studys_records(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    create_or_load_study(url, "s", ["maximize"], ["val_accuracy"])
    ledger = StudyLedger(url, "s", run_id="r1")
    seeds = {"first": {"stages.width.base": 16, "attention": "se", "recipe.lr": 0.01}}
    first = _search(tmp_path, ledger, seeds=seeds)
    a, b, c = (first.suggest(t) for t in ("ta", "tb", "tc"))
    ledger.report(0, 1, 0.5, {})
    ledger.finish(0, State.COMPLETE, [0.6], {"status": "COMPLETE"})
    ledger.report(1, 1, 0.1, {})
    ledger.finish(1, State.PRUNED, None, {"status": "STOPPED"})
    ledger.report(2, 1, 0.4, {})  # trial 2 was running at the interrupt
    records = run_records(ledger.connect(), "r1")
    assert [t.number for t in records] == [0, 1, 2]

    again = _search(tmp_path, StudyLedger(url, "s", run_id="r1"), records=records, seeds=seeds)
    assert [t.state for t in again.study.trials] == [State.COMPLETE, State.PRUNED, State.WAITING]  # taught + queued
    assert again.study.trials[0].values == [0.6] and again.study.trials[1].intermediate_values == {1: 0.1}
    resumed = again.suggest("tnew")  # the unfinished trial first, same point, record, folder; from its checkpoint
    assert resumed["optuna"]["params"] == c["optuna"]["params"] and resumed["optuna"]["number"] == 2
    assert resumed["run_dir"] == c["run_dir"] and resumed["resume_from"].endswith("checkpoint_000001")
    fresh = again.suggest("tnext")  # then new points; the used seed point is not drawn again
    assert fresh["optuna"]["number"] == 3 and fresh["optuna"]["seed_point"] is None
    assert fresh["optuna"]["sampler_number"] > max(x["optuna"]["sampler_number"] for x in (a, b, c))
    assert "resume_from" not in fresh
    st = optuna.load_study(study_name="s", storage=url)
    assert len(st.trials) == 4 and st.trials[2].user_attrs["tune_trial_id"] == "tnew"


def test_checkpoints_are_counted_from_the_folder_for_unfinished_trials_only(tmp_path):
    study = optuna.create_study()
    for state in (State.COMPLETE, State.RUNNING, State.RUNNING):
        study.add_trial(optuna.trial.create_trial(state=state, value=0.5 if state == State.COMPLETE else None))
    trials = study.get_trials()
    for folder in ("0-a/checkpoint_000000", "1-b/checkpoint_000000", "1-c/checkpoint_000002", "1-c/checkpoint_000001"):
        (tmp_path / folder).mkdir(parents=True)
    assert unfinished_checkpoints(tmp_path, trials) == {1: str(tmp_path / "1-c" / "checkpoint_000002")}


# ------------------------------------------------------------------------------ early stopping
# val_accuracy per epoch of trials 0..5, in the order they run (one at a time): good ones learn, bad ones do not.
CURVES = {0: [0.5, 0.6, 0.7], 1: [0.1, 0.1, 0.1], 2: [0.6, 0.65, 0.8], 3: [0.55, 0.6, 0.75],
          4: [0.1, 0.12, 0.1], 5: [0.2, 0.1, 0.1]}


class _Trial:
    def __init__(self, number: int, tune_id: str) -> None:
        self.trial_id, self.config, self.status, self.is_saving = tune_id, {"optuna": {"number": number}}, "RUNNING", False


class _Controller:
    def get_live_trials(self) -> list:
        return []


def _scheduler(cls, resumed: bool = False):
    kw = dict(time_attr=TIME_ATTR, metric="val_accuracy", mode="max")
    make = RESUMED[cls] if resumed else cls
    if cls is MedianStoppingRule:
        return make(grace_period=1, min_samples_required=2, **kw)
    return make(max_t=3, grace_period=1, reduction_factor=2, **kw)


def _play(scheduler, numbers, study: optuna.Study | None = None, session: str = "s1", after: dict | None = None,
          interrupt_at: tuple[int, int] | None = None) -> set[int]:
    """Run trials one at a time through ``scheduler`` as Tune would; record them in ``study``; the stopped ones."""
    stopped = set()
    for n in numbers:
        trial, seen, interrupted = _Trial(n, f"{session}-{n}"), {}, False
        scheduler.on_trial_add(_Controller(), trial)
        for epoch, value in enumerate(CURVES[n], 1):
            if epoch <= (after or {}).get(n, 0):
                continue
            seen[epoch] = value  # Tune asks the scheduler first, then the callbacks record the value
            decision = scheduler.on_trial_result(_Controller(), trial, {TIME_ATTR: epoch, "val_accuracy": value})
            if decision == "STOP" and epoch < len(CURVES[n]):  # at the last epoch, ASHA's STOP is the end
                stopped.add(n)
                break
            if interrupt_at == (n, epoch):
                interrupted = True
                break
        if not interrupted:
            scheduler.on_trial_complete(_Controller(), trial, {TIME_ATTR: epoch, "val_accuracy": value})
        if study is not None:
            state = State.RUNNING if interrupted else State.PRUNED if n in stopped else State.COMPLETE
            study.add_trial(optuna.trial.create_trial(state=state, value=value if state == State.COMPLETE else None,
                                                      intermediate_values=seen))
    return stopped


@pytest.mark.parametrize("cls", [AsyncHyperBandScheduler, MedianStoppingRule], ids=["asha", "median"])
def test_a_resumed_scheduler_stops_the_trials_the_uninterrupted_one_stops(cls):
    uninterrupted = _play(_scheduler(cls), range(6))
    assert uninterrupted and uninterrupted != set(range(6))  # some stopped, some not: the test can tell

    study = optuna.create_study()
    before = _play(_scheduler(cls), range(4), study, interrupt_at=(3, 1))  # trial 3 interrupted after epoch 1
    records = study.get_trials()
    assert records[3].state == State.RUNNING and records[3].intermediate_values == {1: 0.55}
    resumed = resume_scheduler(_scheduler(cls, resumed=True), records, {3: "checkpoint of epoch 1"})
    after = _play(resumed, range(3, 6), session="s2", after={3: 1})  # trial 3 goes on from its checkpoint
    assert before | after == uninterrupted

    forgetful = _play(_scheduler(cls), range(3, 6), session="s2", after={3: 1})  # a resume without the rungs
    assert before | forgetful != uninterrupted
