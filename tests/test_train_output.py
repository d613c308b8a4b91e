"""``nasattn train`` whose output is not a terminal prints one plain line per epoch (no progress bar)."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from nasattn.cli.main import app


def test_train_to_a_pipe_prints_one_line_per_epoch(tmp_path):
    r = CliRunner().invoke(app, ["train", "--preset", "baseline", "--data", "eurosat-mini", "--subset", "0.3",
                                 "--epochs", "2", "--width-mult", "0.125", "--threads", "1", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if re.match(r"epoch \d+: loss ", line)]
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2"]
    assert "━" not in r.output  # no rich bar in a log


# ------------------------------------------------------------------ atomic run folders, full and read-only disks
import errno  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from nasattn import safewrite  # noqa: E402
from nasattn.engine import read_run, write_run  # noqa: E402
from nasattn.rundir import lock_run_folder  # noqa: E402
from nasattn.schema import LOCK_FILE as LOCK_NAME  # noqa: E402
from nasattn.safewrite import DiskError, disk_error, write_file  # noqa: E402


def _result(seed: int, params: int = 8, predictions: bool = True) -> SimpleNamespace:
    torch.manual_seed(seed)
    pred = {"label": [0, 1, 1], "pred": [0, 1, 0], "confidence": [0.9, 0.8, 0.6]} if predictions else None
    return SimpleNamespace(metrics={"seed": seed, "test_accuracy": 0.5 + seed / 10},
                           history=[{"epoch": 1, "train_loss": 1.0 / (seed + 1)}], spec=None, recipe=None,
                           model=torch.nn.Linear(params, 1), predictions=pred)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != LOCK_NAME}


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def test_overwrite_replaces_the_run_as_a_whole_and_keeps_the_lock(tmp_path):
    out = tmp_path / "run"
    write_run(out, _result(0))
    with lock_run_folder(out):
        lock_inode = (out / LOCK_NAME).stat().st_ino
        write_run(out, _result(1, predictions=False))
        assert (out / LOCK_NAME).stat().st_ino == lock_inode  # the held lock is still the folder's lock file
    run = read_run(out)
    assert run["metrics"]["seed"] == 1
    assert run["predictions"] is None  # the old run's predictions.csv did not survive into the new run
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "history.csv", "metrics.json", "model.pt"]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("fail_at", ["metrics.json", "model.pt", "swap"])
def test_a_failed_overwrite_leaves_the_old_run_intact(tmp_path, monkeypatch, fail_at):
    out = tmp_path / "run"
    write_run(out, _result(0))
    (out / "notes.txt").write_text("mine")
    (out / "extra").mkdir()
    before = _snapshot(out)
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_write, real_rename = Path.write_bytes, os.rename

    def write_bytes(self, data):
        if self.name == fail_at:
            raise full
        return real_write(self, data)

    def rename(src, dst):
        if fail_at == "swap" and Path(dst).name.startswith(".run.old-"):
            raise full
        return real_rename(src, dst)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(DiskError, match=r"no space left on .*: free \d+ MB and run the command again"):
        write_run(out, _result(1))
    assert _snapshot(out) == before and (out / "extra").is_dir()
    assert _leftovers(tmp_path) == []


def test_too_little_free_space_is_refused_before_writing_with_the_mb_to_free(tmp_path, monkeypatch):
    out = tmp_path / "run"
    files = __import__("nasattn.engine.io", fromlist=["run_files"]).run_files(_result(0, params=500_000))
    need = sum(len(b) for b in files.values())  # about 2 MB of weights
    free = 1_000_000
    monkeypatch.setattr(safewrite, "free_bytes", lambda path: free)
    with pytest.raises(DiskError) as e:
        write_run(out, _result(0, params=500_000), hint="rerun with --resume")
    short = -(-(need + safewrite.SLACK_BYTES - free) // 1_000_000)
    assert f"free {short} MB and rerun with --resume" in str(e.value)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_write_file_leaves_no_temporary_file_and_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only file system")))
    with pytest.raises(DiskError, match="read-only file system"):
        write_file(path, "new" * 1000)
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


def test_disk_errors_are_found_inside_wrapped_exceptions(tmp_path):
    import sqlite3

    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("(sqlite3.OperationalError) database or disk is full") from inner
    except RuntimeError as outer:
        err = disk_error(outer, tmp_path / "study.db", hint="rerun with --resume")
        nameless = disk_error(outer, hint="x")
    assert err is not None and "rerun with --resume" in str(err) and "no space left on" in str(err)
    assert "device being written" in str(nameless)  # SQLite names no file: no wrong device is named
    assert disk_error(RuntimeError("other"), tmp_path) is None
    assert disk_error(OSError(errno.ENOENT, "missing"), tmp_path) is None


# -------------------------------------------------------------------- a real small disk (tmpfs; we may be root)
@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs mounted at tmp_path/disk (skipped where mounting is not allowed)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", f"nasattn-test-{uuid.uuid4().hex[:6]}", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(r.stderr or r.stdout).strip() or r.returncode}): needs root")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    free = safewrite.free_bytes(disk)
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


def _readonly(disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)


def test_train_overwrite_on_a_full_disk_keeps_the_old_run(small_disk):
    out = small_disk / "run"
    write_run(out, _result(7))
    before = _snapshot(out)
    _fill(small_disk, 64 * 1024)
    r = CliRunner().invoke(app, ["train", "--preset", "baseline", "--data", "eurosat-mini", "--subset", "0.2",
                                 "--epochs", "1", "--width-mult", "0.125", "--threads", "1", "--out", str(out),
                                 "--overwrite"])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and f"no space left on {small_disk}" in r.output
    assert "free" in r.output and "MB" in r.output
    assert _snapshot(out) == before  # the earlier run, whole; nothing of the new one
    assert _leftovers(small_disk) == [] and _leftovers(out) == [LOCK_NAME]


def test_report_on_a_full_or_read_only_disk_is_one_clean_error(small_disk):
    out = small_disk / "run"
    write_run(out, _result(3))
    _fill(small_disk, 64 * 1024)  # a report embeds plotly.js: about 4.7 MB
    r = CliRunner().invoke(app, ["report", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output and "no space left on" in r.output, r.output
    assert not (out / "report.html").exists() and _leftovers(out) == []
    (small_disk / "filler").unlink()
    _readonly(small_disk)
    r = CliRunner().invoke(app, ["report", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output and "read-only file system" in r.output, r.output


def test_report_out_an_existing_folder_is_refused_without_a_temporary_file(tmp_path):
    run, target = tmp_path / "run", tmp_path / "reports"
    write_run(run, _result(0))
    target.mkdir()
    r = CliRunner().invoke(app, ["report", str(run), "--out", str(target)])
    assert r.exit_code == 2 and "is a folder" in r.output and "Traceback" not in r.output, r.output
    assert _leftovers(tmp_path) == [] and list(target.iterdir()) == []


def test_the_cli_harness_turns_a_full_disk_deep_in_a_search_into_one_resume_line(tmp_path, capsys):
    import click
    import typer

    from nasattn.cli.common import handle_user_errors

    def _search() -> None:  # a full disk three exceptions down, as Ray or SQLAlchemy chain it
        try:
            try:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "trials.csv"))
            except OSError as e:
                raise RuntimeError("trial failed") from e
        except RuntimeError as e:
            raise ValueError("search failed") from e

    def _other() -> None:
        raise ValueError("a bug")

    with pytest.raises((typer.Exit, click.exceptions.Exit)) as e:
        handle_user_errors(_search)()
    assert e.value.exit_code == 2
    err = capsys.readouterr().err
    assert "no space left on" in err and "rerun with --resume" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="a bug"):  # anything else is still a bug with its traceback
        handle_user_errors(_other)()


def test_path_refusals_are_one_line_naming_the_path(tmp_path):
    from nasattn.safewrite import path_error

    afile = tmp_path / "f.txt"
    afile.write_text("x")
    with pytest.raises(OSError) as e:
        (afile).mkdir(parents=True, exist_ok=True)  # fidelity --out FILE
    assert path_error(e.value) == f"{afile}: a file stands where a folder is needed (File exists); choose another place"
    with pytest.raises(OSError) as e:
        (afile / "sub").mkdir(parents=True)
    assert "a file stands where a folder is needed" in path_error(e.value)
    assert path_error(OSError(errno.EACCES, "Permission denied", "/x")) == \
        "/x: Permission denied; choose another place, or fix its permissions"
    assert path_error(OSError(errno.ENOENT, "No such file", "/x")) is None  # not a refusal: left to its handler
    assert path_error(ValueError("x")) is None


def test_writing_a_run_into_the_working_directory_keeps_it_usable(tmp_path, monkeypatch):
    out = tmp_path / "here"
    out.mkdir()
    monkeypatch.chdir(out)  # nasattn train --out .
    write_run(Path("."), _result(0))
    write_run(Path("."), _result(1))
    assert Path(os.getcwd()) == out and json_seed(Path("metrics.json")) == 1
    assert _leftovers(tmp_path) == []


def json_seed(path: Path) -> int:
    import json

    return json.loads(path.read_text())["seed"]


def test_a_disk_error_crosses_processes_and_takes_the_callers_hint(tmp_path):
    import pickle

    trial = DiskError("no space left on /x (0.0 MB free, writing /x/run): free 2 MB", "run the command again")
    back = pickle.loads(pickle.dumps(trial))  # as Ray sends a trial's exception to the driver
    assert str(back) == str(trial)

    class TaskError(Exception):  # Ray's RayTaskError keeps the trial's exception as .cause
        cause = back

    found = disk_error(TaskError("trial failed"), hint="rerun with --resume")
    assert str(found) == "no space left on /x (0.0 MB free, writing /x/run): free 2 MB and rerun with --resume"
