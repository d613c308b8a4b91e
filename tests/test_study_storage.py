"""The search's Optuna side without Ray: the searcher (public Searcher + ask/tell), the persistent
study records (RUNNING -> finished in place), resume checks, and the report reading a storage URL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from nasattn.config import ConfigError
from nasattn.search.recorder import StudyLedger
from nasattn.study_rows import study_rows
from nasattn.search.run import RUN_FILE, check_resume, start_record
from nasattn.search.searcher import SpaceSearch, TrialConfigFactory
from nasattn.study_storage import create_or_load_study
from nasattn.search.study import load_study

sys.path.insert(0, str(Path(__file__).parent))
from test_search import TINY_SPACE, _study

State = optuna.trial.TrialState


def _searcher(tmp_path: Path, ledger: StudyLedger | None = None, seeds: dict | None = None, seed: int = 3,
              **study_fields) -> SpaceSearch:
    loaded = load_study(_study(tmp_path, **study_fields))
    factory = TrialConfigFactory(loaded.space, {"data": "eurosat-mini"}, {}, epochs=2)
    return SpaceSearch(factory, "val_accuracy", "max", optuna.samplers.RandomSampler(seed=seed), seeds, ledger=ledger,
                       runs_root=tmp_path / "trials")


def _ledger(tmp_path: Path, directions=("maximize",), metrics=("val_accuracy",)) -> StudyLedger:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    create_or_load_study(url, "s", list(directions), list(metrics))
    return StudyLedger(url, "s", run_id="r1")


def test_searcher_opens_running_records_named_by_their_number_and_reuses_them(tmp_path):
    ledger = _ledger(tmp_path)
    search = _searcher(tmp_path, ledger, seeds={"first": {"stages.width.base": 16, "attention": "se", "recipe.lr": 0.01}})
    c0 = search.suggest("tune-a")
    c1 = search.suggest("tune-b")
    assert c0["optuna"]["params"] == {"stages.width.base": 16, "attention": "se", "recipe.lr": 0.01}
    assert c0["optuna"]["seed_point"] == "first"
    assert (c0["optuna"]["number"], c1["optuna"]["number"]) == (0, 1)
    assert c0["run_dir"] == str(tmp_path / "trials" / "0") and c1["run_dir"] == str(tmp_path / "trials" / "1")
    assert search.suggest("tune-a") == c0  # asked again for the same Tune trial: same point
    st = optuna.load_study(study_name="s", storage=ledger.url)
    assert [t.state for t in st.trials] == [State.RUNNING, State.RUNNING]
    assert st.trials[0].datetime_start is not None and st.trials[0].datetime_complete is None
    assert st.trials[0].user_attrs["tune_trial_id"] == "tune-a" and st.trials[0].params == c0["optuna"]["params"]
    # a restored searcher that draws the same sampler trial again (kill -9 before Tune's snapshot) reuses the record
    again = ledger.open(c1["optuna"]["sampler_number"], c1["optuna"]["params"], c1["optuna"]["distributions"],
                        {"tune_trial_id": "tune-c"})
    assert again == 1 and len(optuna.load_study(study_name="s", storage=ledger.url).trials) == 2


def test_ledger_finishes_records_in_place_with_real_times_and_last_values(tmp_path):
    ledger = _ledger(tmp_path)
    search = _searcher(tmp_path, ledger)
    a, b, c = (search.suggest(t)["optuna"]["number"] for t in ("x", "y", "z"))
    for step, value in ((1, 0.3), (2, 0.4)):
        ledger.report(a, step, value, {"epochs": step})
        ledger.report(b, step, value / 2, {"epochs": step})
    ledger.finish(a, State.COMPLETE, [0.45], {"status": "COMPLETE", "last_lr": 0.001})
    ledger.finish(b, State.PRUNED, None, {"status": "STOPPED", "stopped_by": "early_stopping"})
    ledger.finish(c, State.FAIL, None, {"status": "FAILED", "error": "boom"})
    assert not ledger.finish(a, State.FAIL, None, {"error": "late"})  # finished records are not touched again
    st = optuna.load_study(study_name="s", storage=ledger.url)
    assert [t.number for t in st.trials] == [a, b, c] and st.metric_names == ["val_accuracy"]
    ta, tb, tc = st.trials
    assert ta.state == State.COMPLETE and ta.value == 0.45 and ta.intermediate_values == {1: 0.3, 2: 0.4}
    assert tb.state == State.PRUNED and tb.value == 0.2 and tb.user_attrs["epochs"] == 2  # its last epoch's value
    assert tc.state == State.FAIL and tc.user_attrs["error"] == "boom" and "late" not in str(ta.user_attrs)
    assert all(t.datetime_complete >= t.datetime_start for t in st.trials)
    assert ta.datetime_complete > ta.datetime_start
    rows = study_rows(st, ["val_accuracy"])
    assert [r["number"] for r in rows] == [a, b, c] and rows[1]["stopped_by"] == "early_stopping"
    assert rows[0]["run_dir"] == str(tmp_path / "trials" / str(a)) and rows[0]["last_lr"] == 0.001
    assert "lr" not in rows[0] and rows[0]["param.recipe.lr"] in (0.01, 1e8)


def test_constraint_rejections_are_resampled_without_a_tune_trial(tmp_path):
    loaded = load_study(_study(tmp_path, space={**TINY_SPACE, "constraints": {"params": [None, 3000]}}))
    factory = TrialConfigFactory(loaded.space, {}, {}, epochs=1)
    search = SpaceSearch(factory, "val_accuracy", "max", optuna.samplers.RandomSampler(seed=0))
    configs = [search.suggest(str(i)) for i in range(3)]
    assert all(c["optuna"]["params"]["stages.width.base"] == 8 for c in configs)  # width 16 nets exceed 3000 params
    assert search.rejected > 0 and all("rejected" in t.user_attrs for t in search.study.trials if t.state == State.PRUNED)


# ------------------------------------------------------------------------------------------ resume checks
def test_resume_refuses_a_missing_folder_an_empty_one_and_another_study(tmp_path):
    loaded = load_study(_study(tmp_path, budget={"trials": 3, "epochs": 2}))
    out = loaded.output
    with pytest.raises(ConfigError, match="does not exist"):
        check_resume(out, loaded)
    out.mkdir()
    with pytest.raises(ConfigError, match="holds no search run"):
        check_resume(out, loaded)
    (out / "tune").mkdir()
    run_id = start_record(out, loaded)
    assert check_resume(out, loaded) == run_id == json.loads((out / RUN_FILE).read_text())["run_id"]
    changed = load_study(_study(tmp_path, name="other.yaml", budget={"trials": 5, "epochs": 2}))
    with pytest.raises(ConfigError, match=r"fields that differ: budget"):
        check_resume(out, changed)
    other_space = load_study(_study(tmp_path, name="space.yaml", budget={"trials": 3, "epochs": 2},
                                    space={**TINY_SPACE, "recipe": {"lr": 0.1, "optimizer": "sgd"}}))
    with pytest.raises(ConfigError, match=r"fields that differ: space"):
        check_resume(out, other_space)
    assert check_resume(out, load_study(_study(tmp_path, name="same.yaml", budget={"trials": 3, "epochs": 2}))) == run_id


def test_cli_resume_of_nothing_exits_2_before_any_work(tmp_path):
    from nasattn.cli.main import app

    study = _study(tmp_path)
    res = CliRunner().invoke(app, ["search", str(study), "--resume", "--out", str(tmp_path / "nothing"), "--no-live"])
    assert res.exit_code == 2, res.output
    assert "nothing to resume" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "nothing").exists()


# ------------------------------------------------------------------------------------------ report
def test_search_report_reads_a_journal_storage_with_optunas_figures(tmp_path):
    from nasattn.report import render_report

    journal = tmp_path / "elsewhere" / "study.log"
    url = f"journal:{journal}"
    st = create_or_load_study(url, "j", ["maximize", "minimize"], ["val_accuracy", "params"])
    dists = {"w": optuna.distributions.IntDistribution(1, 12), "a": optuna.distributions.CategoricalDistribution(["x", "y"])}
    for i in range(12):  # importances are drawn from 10 complete trials on
        w, a = i + 1, "xy"[i % 2]
        st.add_trial(optuna.trial.create_trial(params={"w": w, "a": a}, distributions=dists,
                                               values=[0.1 * w, 100.0 * w * (2 if a == "y" else 1)]))
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "j", "storage": str(journal), "objectives": [{"metric": "val_accuracy"}, {"metric": "params"}]}))
    html = render_report(tmp_path).read_text()
    assert 'id="fig-search-importances"' in html and 'id="fig-search-history"' in html
    assert not (tmp_path / "study.db").exists()
    front = {t.number for t in st.best_trials}
    assert front == {0, 2, 4, 6, 8, 10, 11}  # an odd trial (a = y: twice the params) is dominated by the next one
    assert [r["pareto"] for r in study_rows(st, ["val_accuracy", "params"])] == [n in front for n in range(12)]
    start = html.index('id="fig-search-pareto"')
    figure = html[start:html.index("</script>", start)]  # the front trace lists Optuna's front, in x order
    assert '"text":[' + ",".join(f'"{n}"' for n in sorted(front)) + "]" in figure


def test_checkpoints_of_finished_trials_are_removed_and_running_ones_kept(tmp_path):
    from nasattn.search.run import remove_finished_checkpoints

    ledger = _ledger(tmp_path)
    search = _searcher(tmp_path, ledger)
    done, running = (search.suggest(t)["optuna"]["number"] for t in ("a", "b"))
    ledger.finish(done, State.FAIL, None, {"error": "x"})
    exp = tmp_path / "tune"
    for n, tid in ((done, "a"), (running, "b")):
        (exp / f"{n}-{tid}" / "checkpoint_000001").mkdir(parents=True)
    assert remove_finished_checkpoints(exp, ledger.url, "s") == 1
    assert not (exp / f"{done}-a" / "checkpoint_000001").exists() and (exp / f"{running}-b" / "checkpoint_000001").is_dir()


def test_openers_of_a_new_database_at_the_same_moment_all_open_it(tmp_path):
    """Optuna creates its tables when they are missing; openers that race to create them all end up with
    the storage (a search starting while a reader opens its study.db failed with 'table ... already exists')."""
    import threading

    from nasattn.study_storage import open_storage

    for attempt in range(5):
        url = f"sqlite:///{tmp_path / f'race{attempt}.db'}"
        start = threading.Barrier(4)
        opened, errors = [], []

        def open_it(url: str = url, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                opened.append(open_storage(url))
            except Exception as e:  # noqa: BLE001 - recorded for the assertion
                errors.append(e)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(opened) == 4, errors
        optuna.create_study(study_name="s", storage=opened[0])
        assert [s.study_name for s in optuna.get_all_study_summaries(opened[3])] == ["s"]


def test_an_unopenable_database_fails_at_the_first_try_with_its_own_error(tmp_path, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from nasattn.study_storage import open_storage

    tries = []
    real = optuna.storages.RDBStorage
    monkeypatch.setattr(optuna.storages, "RDBStorage", lambda *a, **kw: tries.append(1) or real(*a, **kw))
    with pytest.raises(OperationalError, match="unable to open database file"):
        open_storage(f"sqlite:///{tmp_path / 'missing-folder' / 'study.db'}")
    assert len(tries) == 1  # not a lost race: not opened again
