"""The progress table names a search trial by its study number, the id of its folder and CSV row."""

from __future__ import annotations

from types import SimpleNamespace

from nasattn.tune.progress import TrialTable, trial_label


def _trial(number: int | None, tid: str = "fabe278f") -> SimpleNamespace:
    config = {"optuna": {"number": number}} if number is not None else {}
    return SimpleNamespace(trial_id=tid, config=config)


def test_a_search_trial_is_named_by_its_study_number_and_others_by_the_tune_id():
    assert trial_label(_trial(3)) == "#3"
    assert trial_label(_trial(None)) == "fabe278f"


def test_plain_lines_follow_the_study_number(capsys):
    table = TrialTable(total=2, live=False, describe=lambda cfg: "w64")
    table.setup()
    trial = _trial(3)
    table.on_trial_start(0, [], trial)
    table.on_trial_result(0, [], trial, {"val_accuracy": 0.5, "epoch": 1})
    table.on_trial_complete(0, [], trial)
    out = capsys.readouterr().out
    assert "#3 started | w64" in out and "#3 epoch 1" in out and "#3 stopped" in out
    assert "fabe278f" not in out


def test_tables_in_a_log_are_not_cut_at_80_columns(monkeypatch):
    from nasattn.say import LOG_WIDTH, make_console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert make_console().width == LOG_WIDTH > 80  # pytest's captured stdout is no terminal
    monkeypatch.setenv("COLUMNS", "123")
    assert make_console().width == 123


def test_a_preset_seed_trial_is_named_by_its_preset_in_lines_and_in_the_live_table(capsys):
    from rich.console import Console

    table = TrialTable(total=4, live=False, describe=lambda cfg: "w64")
    table.setup()
    seeded = SimpleNamespace(trial_id="a1", config={"optuna": {"number": 0, "seed_point": "baseline"}})
    table.on_trial_start(0, [], seeded)
    table.on_trial_start(0, [], _trial(3, "b2"))
    assert "#0 baseline started | w64" in capsys.readouterr().out
    screen = Console(record=True, width=160)
    screen.print(table._table())
    rows = screen.export_text()
    assert "#0 baseline" in rows and "#3 " in rows and "#3 baseline" not in rows


def test_a_failed_trial_line_carries_its_one_line_error(capsys, tmp_path):
    """The trial's ERROR file (its one line, from the node it ran on) follows its 'error' line; a trial
    without one (Tune lost its process) gets the bare line."""
    table = TrialTable(total=2, live=False, describe=lambda cfg: "w64")
    table.setup()
    (tmp_path / "ERROR").write_text("TrainingDivergedError: non-finite training loss at epoch 1, step 2/2 "
                                    "(lr 1e+30) (on node 192.0.2.2)\nmore detail\n")
    failed = SimpleNamespace(trial_id="a1", config={"optuna": {"number": 0}, "run_dir": str(tmp_path)})
    lost = SimpleNamespace(trial_id="b2", config={"optuna": {"number": 1}, "run_dir": str(tmp_path / "none")})
    for trial in (failed, lost):
        table.on_trial_start(0, [], trial)
        table.on_trial_error(0, [], trial)
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("[1/2] #0 error"))
    assert lines[at + 1] == "    TrainingDivergedError: non-finite training loss at epoch 1, step 2/2 (lr 1e+30) (on node 192.0.2.2)"
    assert "more detail" not in "\n".join(lines)
    assert lines[-1].startswith("[2/2] #1 error") and lines[-1].endswith("| w64")


def test_a_failed_grid_trial_finds_its_error_by_its_index(capsys, tmp_path):
    """Ablation and fidelity trials carry only ``{"index": i}``: their run folder comes from the grid's list."""
    from nasattn.tune.progress import GridLabel, GridRunDir

    runs = [tmp_path / "base" / "seed0", tmp_path / "diverges" / "seed0"]
    runs[1].mkdir(parents=True)
    (runs[1] / "ERROR").write_text("TrainingDivergedError: non-finite training loss at epoch 1, step 2/2 (lr 1e+30)\n")
    table = TrialTable(total=2, live=False, describe=GridLabel(["base seed0", "diverges seed0"]),
                       run_dir=GridRunDir([str(r) for r in runs]))
    table.setup()
    trial = SimpleNamespace(trial_id="5084f_00001", config={"index": 1})
    table.on_trial_start(0, [], trial)
    table.on_trial_error(0, [], trial)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith("[1/2] 5084f_00001 error") and lines[-2].endswith("| diverges seed0")
    assert lines[-1] == "    TrainingDivergedError: non-finite training loss at epoch 1, step 2/2 (lr 1e+30)"
    assert GridRunDir([str(r) for r in runs])({}) is None and GridLabel(["a"])({"x": 1}) == "{'x': 1}"
