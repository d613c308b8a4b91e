"""An ablation on a full disk (#22 item 4): Tune's per-trial traceback stays out of the output, the run
stops with nasattn's one line and the resume hint, keeps its state, and --resume finishes it."""

from __future__ import annotations

import csv
import errno
import logging
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasattn import safewrite
from nasattn.cli.main import app
from nasattn.safewrite import DiskError
from nasattn.schema import ABLATION_CSV, ABLATION_JSON, TRIALS_JSON, TrialStatus
from nasattn.tune.quiet import SUMMARY_LOGGER, TRIAL_ERROR_LOGGER, HandledTrialErrors
from nasattn.tune.runner import disk_failure

sys.path.insert(0, str(Path(__file__).parent))
from test_cases import _disk  # the fault corpus's tmpfs mount


def _record(logger: str, msg: str, args: tuple = (), error: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error is not None else None
    return logging.LogRecord(logger, logging.ERROR, __file__, 1, msg, args, exc_info)


class _TaskError(Exception):  # Ray's RayTaskError keeps the trial's exception as .cause
    def __init__(self, cause: BaseException) -> None:
        super().__init__("ray::ImplicitFunc.train() failed")
        self.cause = cause


def test_tunes_records_of_trials_nasattn_reports_in_one_line_are_dropped_and_bugs_kept():
    """A full or read-only disk and nasattn's own errors (diverged, no CUDA) lose Tune's traceback; a bug keeps it."""
    from nasattn.engine.trainer import TrainingDivergedError
    from nasattn.tune.placement import TrialDeviceError

    handled = HandledTrialErrors()
    full = _TaskError(DiskError("no space left on /d (0.1 MB free, writing /d/x): free 2 MB", "run the command again"))
    readonly = _TaskError(OSError(errno.EROFS, "Read-only file system", "/d/x"))
    diverged = _TaskError(TrainingDivergedError("non-finite training loss at epoch 1, step 2/2 (lr 1e+30)"))
    device = RuntimeError("ray::ImplicitFunc.train() failed")
    device.__cause__ = TrialDeviceError("trial t_5: device 'cuda' but Ray assigned it no GPU")
    for n, error in enumerate((full, readonly, diverged, device), start=1):
        assert not handled.filter(_record(TRIAL_ERROR_LOGGER, f"Trial task failed for trial t_{n}", error=error)), n
    assert handled.filter(_record(TRIAL_ERROR_LOGGER, "Trial task failed for trial t_9", error=_TaskError(ValueError("a bug"))))
    assert handled.filter(_record(TRIAL_ERROR_LOGGER, "Trial task failed for trial t_9", error=ValueError("a bug")))
    assert not handled.filter(_record(SUMMARY_LOGGER, "Trials did not complete: %s", (["t_1", "t_2", "t_3", "t_4"],)))
    assert handled.filter(_record(SUMMARY_LOGGER, "Trials did not complete: %s", (["t_1", "t_9"],)))
    assert handled.filter(_record(SUMMARY_LOGGER, "Total run time: 3 s"))


def test_a_grid_with_a_trial_on_a_full_disk_gives_one_line_with_the_resume_hint():
    class Result:
        def __init__(self, error: BaseException | None) -> None:
            self.error = error

    full = _TaskError(DiskError("no space left on /d (0.1 MB free, writing /d/x): free 2 MB", "run the command again"))
    found = disk_failure([Result(None), Result(_TaskError(ValueError("a bug"))), Result(full)])
    assert str(found) == "no space left on /d (0.1 MB free, writing /d/x): free 2 MB and rerun with --resume"
    assert disk_failure([Result(None), Result(ValueError("a bug"))]) is None


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs at tmp_path/disk (room for a report once the filler is gone; skipped without root)."""
    with _disk({"size": "8m"}, tmp_path):
        yield tmp_path / "disk"


class _Logged(logging.Handler):
    """Every record that reaches Ray's loggers' handlers (past their filters), as a stream handler prints it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _ablate(out: Path, *extra: str) -> tuple[int, str]:
    """``nasattn ablate`` in-process under the module's Ray; returns its exit code and everything it printed,
    Ray's and Tune's log records included."""
    args = ["ablate", "--preset", "baseline", "--data", "eurosat-mini", "--seeds", "0", "--epochs", "1",
            "--width-mult", "0.125", "--include", "no_attention", "--no-live", "--out", str(out), *extra]
    logged = _Logged()
    ray_logger = logging.getLogger("ray")
    ray_logger.addHandler(logged)
    try:
        res = CliRunner().invoke(app, args)
    finally:
        ray_logger.removeHandler(logged)
    return res.exit_code, "\n".join([res.output, *logged.lines, repr(res.exception)])


@pytest.mark.slow
@pytest.mark.timeout(900)  # two ablations through Ray
def test_an_ablation_on_a_full_disk_stops_with_the_resume_hint_and_resumes(small_disk, module_ray, monkeypatch):
    """Both runs in-process under one Ray (the disk, the trials and Tune's logging are as real as in a
    subprocess; its Python, torch and Ray starts are not needed)."""
    monkeypatch.setenv("COLUMNS", "160")
    out = small_disk / "abl"
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(0, safewrite.free_bytes(small_disk) - 300_000))  # room to start, not for a run
    code, text = _ablate(out)
    assert code == 2, text
    assert "Traceback" not in text and "Trial task failed" not in text and "Trials did not complete" not in text, text
    assert f"no space left on {small_disk}" in text and "MB and rerun with --resume" in text, text
    assert (out / ABLATION_JSON).is_file() and (out / TRIALS_JSON).is_file() and (out / "tune").is_dir()
    assert not list(small_disk.rglob("*.tmp")) and not list(small_disk.rglob(".*.new-*"))

    filler.unlink()
    code, text = _ablate(out, "--resume")
    assert code == 0, text
    with open(out / ABLATION_CSV, newline="") as f:
        assert [row["status"] for row in csv.DictReader(f)] == [TrialStatus.COMPLETE]
