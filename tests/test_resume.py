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
from nasattn.secrets import mask_secrets, mask_url
from nasattn.study_storage import create_or_load_study, storage_url
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


# ------------------------------------------------------------------------------ secrets
PASSWORD = "S3cretPw"
PG_URL = f"postgresql+psycopg2://nas:{PASSWORD}@127.0.0.1:1/study"


def test_urls_are_masked_by_sqlalchemys_parser_wherever_they_appear():
    assert mask_url(PG_URL) == "postgresql+psycopg2://nas:***@127.0.0.1:1/study"
    assert mask_url("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db" and mask_url("journal:/x.log") == "journal:/x.log"
    line = f"nasattn search s.yaml --set storage={PG_URL} --set ray.address=ray://me:{PASSWORD}@head:10001 --out x"
    masked = mask_secrets({"command": line, "nested": [PG_URL, 3]})
    assert PASSWORD not in json.dumps(masked) and masked["nested"][1] == 3
    assert masked["command"].endswith("ray://me:***@head:10001 --out x")


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def test_the_run_record_study_copy_lock_and_tunes_pickles_keep_no_password(tmp_path, monkeypatch):
    from nasattn.rundir import lock_run_folder
    from nasattn.search.run import _saved_study, check_resume, start_record

    monkeypatch.setattr(sys, "argv", ["nasattn", "search", "s.yaml", "--set", f"storage={PG_URL}"])
    loaded = load_study(_study(tmp_path), {"storage": PG_URL})
    out = loaded.output
    with lock_run_folder(out, mask_secrets(" ".join(sys.argv))):
        (out / "tune").mkdir()
        start_record(out, loaded)
        _saved_study(out, loaded)
        (out / "tune" / "ledger.pkl").write_bytes(pickle.dumps(StudyLedger(PG_URL, "s", "r1")))  # as Tune pickles callbacks
        assert PASSWORD not in _all_text(out)
        lock = out / ".nasattn.lock"
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert lock.read_text() == ""  # released: no pid of an ended process is left
    for name in ("run.json", "study.yaml", ".nasattn.lock"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    assert json.loads((out / "run.json").read_text())["study"]["storage"] == mask_url(PG_URL)
    assert check_resume(out, load_study(_study(tmp_path), {"storage": PG_URL})) is not None  # same URL: resumable


def test_the_storage_url_can_come_from_an_environment_variable_named_in_the_study(tmp_path, monkeypatch):
    loaded = load_study(_study(tmp_path), {"storage": {"url_env": "NASATTN_TEST_STORAGE"}})
    monkeypatch.setenv("NASATTN_TEST_STORAGE", PG_URL)
    assert storage_url(loaded.study.storage, tmp_path) == PG_URL
    assert storage_url({"url_env": "NASATTN_TEST_STORAGE"}, tmp_path) == PG_URL  # as study.yaml keeps it
    monkeypatch.delenv("NASATTN_TEST_STORAGE")
    with pytest.raises(ConfigError, match="NASATTN_TEST_STORAGE is not set"):
        storage_url(loaded.study.storage, tmp_path)
    with pytest.raises(ConfigError, match="url_env"):
        load_study(_study(tmp_path), {"storage": {"url_env": "NOT A NAME"}})


def test_a_search_refused_over_its_storage_writes_nothing_and_shows_no_password(tmp_path):
    from typer.testing import CliRunner

    from nasattn.cli.main import app

    out = tmp_path / "refused"
    res = CliRunner().invoke(app, ["search", str(_study(tmp_path)), "--set", f"storage={PG_URL}", "--out", str(out),
                                   "--no-live"])
    assert res.exit_code == 2, res.output
    assert "cannot open" in res.output and PASSWORD not in res.output and "Traceback" not in res.output
    assert not out.exists()  # no run.json: the same command works once the storage does


def test_an_empty_or_foreign_study_db_is_a_clear_error(tmp_path):
    from nasattn.search.run import check_resume, start_record

    loaded = load_study(_study(tmp_path))
    out = loaded.output
    (out / "tune").mkdir(parents=True)
    start_record(out, loaded)
    url = f"sqlite:///{out / 'study.db'}"
    with pytest.raises(ConfigError, match="study.db is missing"):
        check_resume(out, loaded, url)
    (out / "study.db").write_bytes(b"")
    with pytest.raises(ConfigError, match="study.db: is empty"):
        check_resume(out, loaded, url)
    (out / "study.db").write_text("not a database\n")
    with pytest.raises(ConfigError, match="is not an SQLite database"):
        check_resume(out, loaded, url)
    with pytest.raises(ConfigError, match="is not an SQLite database"):
        create_or_load_study(url, "s", ["maximize"])


def test_the_psycopg2_hint_only_when_psycopg2_is_missing(monkeypatch):
    from nasattn import study_storage as storage

    assert storage._missing_driver_hint(PG_URL, ImportError("no module")) == ""  # installed here
    monkeypatch.setattr(storage.importlib.util, "find_spec", lambda name: None)
    assert "pip install psycopg2-binary" in storage._missing_driver_hint(PG_URL, ImportError("no module"))
    assert storage._missing_driver_hint(PG_URL, OSError("refused")) == ""


def test_a_moved_folder_whose_storage_is_inside_the_original_is_refused(tmp_path):
    from nasattn.search.run import RUN_FILE, check_resume, start_record

    original = tmp_path / "a"
    loaded = load_study(_study(tmp_path), {"storage": f"sqlite:///{original / 'study.db'}"}, output=original)
    (original / "tune").mkdir(parents=True)
    start_record(original, loaded)
    moved = tmp_path / "b"
    original.rename(moved)
    again = load_study(_study(tmp_path), {"storage": f"sqlite:///{original / 'study.db'}"}, output=moved)
    with pytest.raises(ConfigError, match="would write into the original"):
        check_resume(moved, again, storage_url(again.study.storage, moved))
    assert json.loads((moved / RUN_FILE).read_text())["folder"] == str(original)


def test_no_module_a_search_folder_reaches_loads_pickles_or_restores_tune_state():
    """Resume (search, ablation, fidelity) and report read run folders: none of their modules may unpickle (the end-to-end
    resume test plants payloads to check the same at run time)."""
    root = Path(__file__).resolve().parents[1] / "nasattn"
    forbidden = ("pickle.load", "cloudpickle", "Tuner.restore", "restore_from_dir", "joblib.load", "weights_only=False")
    for sub in ("search", "report", "fidelity", "ablation", "tune", "cli/search_cmd.py", "cli/report_cmd.py", "cli/ablate_cmd.py"):
        for path in (root / sub).rglob("*.py") if (root / sub).is_dir() else [root / sub]:
            text = path.read_text()
            assert not [f for f in forbidden if f in text], path
            assert text.count("torch.load(") == text.count("weights_only=True"), path


class _Payload:
    """Unpickling this creates ``path``: the marker of code run from a run folder."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _plant(folder: Path, marker: Path) -> list[Path]:
    """A payload in every pickle a Tune experiment folder holds (and a searcher state Tune would restore)."""
    targets = [p for p in folder.rglob("*.pkl")] + [folder / "searcher-state-planted.pkl"]
    for p in targets:
        p.write_bytes(pickle.dumps(_Payload(marker)))
    return targets


def test_a_planted_checkpoint_is_refused_by_the_trainables_weights_only_load(tmp_path):
    from nasattn.tune.trainable import STATE_FILE, _load_state

    marker = tmp_path / "ran"
    (tmp_path / STATE_FILE).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(pickle.UnpicklingError):
        _load_state(str(tmp_path))
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.timeout(1200)  # three searches through Ray
def test_an_interrupted_search_moved_copied_and_resumed_stops_what_the_uninterrupted_one_stops(tmp_path):
    """SIGINT during trial 1: the folder is locked while the search runs, exit 130 with one resume line, trial 1
    stays RUNNING (INTERRUPTED) in the study; the folder is moved and copied, and --resume in the copy (its pickles
    planted) finishes trial 1 under its own number and start from its checkpoint and stops what the uninterrupted
    search stops (this test also holds what test_interrupts.py's SIGINT-then-resume test checked)."""
    import hashlib
    import shutil
    import signal
    import subprocess
    import time

    from typer.testing import CliRunner

    from nasattn.cli.main import app
    from nasattn.rundir import lock_holder
    from test_interrupts import check_interrupted_search
    from test_search import NASATTN, _rows, _run

    good = {"stages.width.base": 8, "attention": "none", "recipe.lr": 0.01}
    bad = {**good, "recipe.lr": 1.0e8}  # stays at chance level: ASHA stops it at its first rung
    # trials 0 and 1 train the same point with the same seed (equal values: ASHA never stops 1 for 0),
    # so trial 1 is certain to be running, with a checkpoint, when the interrupt comes
    fields = dict(seeds={"points": [good, good, bad]},
                  early_stopping={"type": "asha", "grace_period": 1, "reduction_factor": 2},
                  budget={"trials": 3, "epochs": 5, "max_steps_per_epoch": 3},
                  resources={"cpus_per_trial": 1, "max_concurrent": 1})
    # Uninterrupted, ASHA stops trial 2 (at chance) at its first rung against 0 and 1. A resume that lost the
    # rungs would let it finish: its first result would be the only one at rung 1 of the new session (the
    # uninterrupted and resumed schedulers are compared on every interruption point in
    # test_a_resumed_scheduler_stops_the_trials_the_uninterrupted_one_stops).
    stopped_whole = {"2"}
    (tmp_path / "i").mkdir()
    study = _study(tmp_path / "i", **fields)
    out = tmp_path / "i" / "out"
    url = f"sqlite:///{out / 'study.db'}"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "COLUMNS": "160"}
    proc = subprocess.Popen([*NASATTN, "search", str(study), "--no-live"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        deadline = time.time() + 400
        while time.time() < deadline and lock_holder(out) is None and proc.poll() is None:
            time.sleep(0.2)
        # the running search holds its folder: a second one is refused, naming the holder (in-process: the lock
        # is the subject, and the refusal comes before anything starts)
        second = CliRunner().invoke(app, ["search", str(study), "--out", str(out), "--resume", "--no-live"])
        assert second.exit_code == 2 and f"pid {proc.pid}" in second.output, second.output
        # interrupt once trial 0 has finished and trial 1 has a checkpoint
        while time.time() < deadline and not list((out / "tune").glob("1-*/checkpoint_*")) and proc.poll() is None:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        text, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, text
    check_interrupted_search(text, out, f"nasattn search {study}")  # one resume line, outputs written
    trials = optuna.load_study(study_name="tiny", storage=url).trials
    unfinished = [t.number for t in trials if not t.state.is_finished()]
    on_disk = sum(1 for n in unfinished if list((out / "tune").glob(f"{n}-*/checkpoint_*")))
    assert on_disk >= 1 and f"{on_disk} checkpointed" in text, text  # counts the checkpoints that exist
    assert "1 finished" in text, text
    running = trials[1]  # the interrupted trial stays RUNNING (status INTERRUPTED) in the study
    assert running.state == State.RUNNING and running.user_attrs["status"] == "INTERRUPTED", running

    moved, copy = tmp_path / "i" / "moved", tmp_path / "i" / "copy"
    out.rename(moved)  # mv, then cp -a of the moved folder: the paths recorded inside point to neither
    subprocess.run(["cp", "-a", str(moved), str(copy)], check=True)
    marker = tmp_path / "code-ran"
    assert len(_plant(copy / "tune", marker)) >= 3
    db_before = hashlib.sha256((moved / "study.db").read_bytes()).hexdigest()

    res = _run(["search", str(study), "--out", str(copy), "--resume", "--no-live"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"({on_disk} from a checkpoint)" in res.stdout
    report = CliRunner().invoke(app, ["report", str(copy)])  # in-process: a pickle it loaded would run here
    assert not marker.exists(), "a pickle from the run folder was loaded"
    assert report.exit_code == 0, report.output
    assert not out.exists() and hashlib.sha256((moved / "study.db").read_bytes()).hexdigest() == db_before
    rows = _rows(copy)
    assert len(rows) == 3 and all(Path(r["run_dir"]).parent == copy / "trials" for r in rows)
    assert {r["number"] for r in rows if r["state"] == "PRUNED"} == stopped_whole
    assert {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"}
    assert (copy / ".nasattn.lock").read_text() == ""
    st = optuna.load_study(study_name="tiny", storage=f"sqlite:///{copy / 'study.db'}")
    assert [t.number for t in st.trials] == [0, 1, 2] and st.trials[1].state == State.COMPLETE
    resumed = st.trials[1]  # --resume finished the interrupted trial under its own number and start
    assert resumed.datetime_start == running.datetime_start and sorted(resumed.intermediate_values)[-1] == 5
    shutil.rmtree(moved)


def test_an_interrupted_grid_counts_the_checkpoints_earlier_sessions_left(tmp_path):
    """A resumed grid trial stopped before its first new checkpoint still has its earlier one on disk."""
    from types import SimpleNamespace

    from nasattn.tune.runner import unfinished_with_checkpoint

    exp = tmp_path / "tune"
    (exp / "0-old00001" / "checkpoint_000002").mkdir(parents=True)  # config 0: the earlier session's checkpoint

    def result(index, checkpoint=None, final=False):
        return SimpleNamespace(error=None, metrics={"final": final}, checkpoint=checkpoint, config={"index": index},
                               path=str(exp / f"{index}-new0000{index}"))

    grid = [result(0), result(1), result(2, checkpoint="ckpt"), result(3, checkpoint="ckpt", final=True)]
    assert unfinished_with_checkpoint(grid) == 2  # 0 (on disk from before) and 2 (this session); 1 has none, 3 ended


def test_a_trial_resumed_from_a_checkpoint_gives_the_study_the_values_of_the_epochs_it_restored(tmp_path):
    """A crash between a trial's checkpoint and the driver's record of that epoch: the resumed trial's first
    report carries the restored epochs' values, and the study gets them (and no user attribute of them)."""
    from types import SimpleNamespace

    from nasattn.schema import RESTORED_VALUES
    from nasattn.search.recorder import StudyRecorder
    from nasattn.tune.trainable import TrialReporter, restored_values

    state = {"history": [{"epoch": 1, "val_accuracy": 0.4}, {"epoch": 2, "val_accuracy": 0.5}, {"epoch": 3}]}
    assert restored_values(state) == {"1": 0.4, "2": 0.5} and restored_values(None) == {}
    reporter = TrialReporter({}, {}, last_epoch=5, t_start=0.0, resumed=True, restored=restored_values(state))
    assert reporter.take_restored() == {RESTORED_VALUES: {"1": 0.4, "2": 0.5}} and reporter.take_restored() == {}

    url = f"sqlite:///{tmp_path / 'study.db'}"
    create_or_load_study(url, "s", ["maximize"], ["val_accuracy"])
    ledger = StudyLedger(url, "s", run_id="r1")
    config = _search(tmp_path, ledger).suggest("ta")
    trial = SimpleNamespace(trial_id="ta", config=config)
    recorder = StudyRecorder(ledger, ["val_accuracy"])
    recorder.on_trial_result(0, [], trial, {"epoch": 3, "val_accuracy": 0.6, RESTORED_VALUES: {"1": 0.4, "2": float("nan")}})
    record = optuna.load_study(study_name="s", storage=url).trials[0]
    assert record.intermediate_values == {1: 0.4, 3: 0.6}  # a non-finite restored value is left out
    assert not [k for k in record.user_attrs if "restored" in k]
    recorder.on_trial_result(0, [], trial, {"epoch": 4, "val_accuracy": 0.7, "final": True, RESTORED_VALUES: {"2": 0.5}})
    assert optuna.load_study(study_name="s", storage=url).trials[0].intermediate_values == {1: 0.4, 2: 0.5, 3: 0.6}


def test_the_time_limit_ends_a_trial_with_epochs_as_stopped_and_one_without_as_not_started(tmp_path):
    """At the end of an experiment that ran out of time, the recorder finishes every trial still running:
    PRUNED with its last epoch's value when it reported one, FAIL "before its first epoch" otherwise;
    the run's counts then make ``run_search`` say that the time limit, not the trials, left no result."""
    from types import SimpleNamespace

    from nasattn.search.recorder import StudyRecorder
    from nasattn.search.run import _nothing_finished

    url = f"sqlite:///{tmp_path / 'study.db'}"
    create_or_load_study(url, "s", ["maximize"], ["val_accuracy"])
    ledger = StudyLedger(url, "s", run_id="r1")
    search = _search(tmp_path, ledger)
    recorder = StudyRecorder(ledger, ["val_accuracy"], time_limit=10)
    recorder.started -= 20  # the experiment began 20 s ago: past its 10 s limit
    trained, waiting = (SimpleNamespace(trial_id=t, config=search.suggest(t), status="RUNNING", last_result={})
                        for t in ("ta", "tb"))
    for epoch, acc in ((1, 0.3), (2, 0.45)):
        trained.last_result = {"epoch": epoch, "val_accuracy": acc, "time_total_s": 3.0 * epoch}
        recorder.on_trial_result(epoch, [], trained, trained.last_result)
    recorder.on_experiment_end([trained, waiting])

    a, b = optuna.load_study(study_name="s", storage=url).trials
    assert (a.state, a.value, a.intermediate_values) == (State.PRUNED, 0.45, {1: 0.3, 2: 0.45})
    assert a.user_attrs["stopped_by"] == "time_limit" and a.user_attrs["status"] == "STOPPED" and a.user_attrs["epochs"] == 2
    assert (b.state, b.user_attrs["status"], b.user_attrs["stopped_by"]) == (State.FAIL, "NOT_STARTED", "time_limit")
    assert b.user_attrs["error"] == "time_limit: stopped before its first epoch"
    kept = Path(trained.config["run_dir"])  # the stopped trial's epochs so far and why it stopped
    assert len((kept / "history.csv").read_text().splitlines()) == 3
    assert json.loads((kept / "stopped.json").read_text())["stopped_by"] == "time_limit"
    assert "time limit (10 s) ended all 2 started trials" in _nothing_finished({"NOT_STARTED": 2}, 10, url, "s")
    one = _nothing_finished({"NOT_STARTED": 1}, None, url, "s")
    assert one == "the time limit ended the one started trial before its first epoch; give budget.time_limit more time"
    mixed = _nothing_finished({"NOT_STARTED": 1, "FAILED": 1}, 10, url, "s")
    assert mixed.startswith("every trial failed (1 of 2 started, 1 more ended by the time limit")


def test_an_interrupted_experiment_leaves_its_running_trials_to_resume(tmp_path):
    """Before the time limit (a signal ended the experiment) a running trial stays RUNNING, marked INTERRUPTED."""
    from types import SimpleNamespace

    from nasattn.search.recorder import StudyRecorder

    url = f"sqlite:///{tmp_path / 'study.db'}"
    create_or_load_study(url, "s", ["maximize"], ["val_accuracy"])
    ledger = StudyLedger(url, "s", run_id="r1")
    recorder = StudyRecorder(ledger, ["val_accuracy"], time_limit=3600)
    trial = SimpleNamespace(trial_id="ta", config=_search(tmp_path, ledger).suggest("ta"), status="RUNNING",
                            last_result={"epoch": 1, "val_accuracy": 0.3})
    recorder.on_trial_result(1, [], trial, trial.last_result)
    recorder.on_experiment_end([trial])
    record = optuna.load_study(study_name="s", storage=url).trials[0]
    assert record.state == State.RUNNING and record.user_attrs["status"] == "INTERRUPTED"
