"""Real processes, real signals: a locked output folder, and SIGINT/SIGTERM during an ablation, a training and a
fidelity study (searches are signalled in test_resume.py, SIGINT, and test_resume_hyperband.py, SIGTERM)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from nasattn.cli.main import app


ROOT = Path(__file__).resolve().parents[1]
NASATTN = [sys.executable, "-m", "nasattn.cli.main"]
TINY_SEARCH = ["search", "quickstart", "--set", "budget.trials=4", "--set", "budget.epochs=200", "--set", "budget.max_steps_per_epoch=2",
               "--set", "train.width_mult=0.125", "--set", "train.zero_cost=false", "--set", "resources.max_concurrent=1",
               "--set", "report=false",
               "--no-live"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", COLUMNS="200")  # the session's data cache
    env.pop("NASATTN_DATA", None)
    return env


def _start(args: list[str], tmp_path: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(NASATTN + args, cwd=tmp_path, env=_env(tmp_path), stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def _wait_for(cond, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before the awaited state:\n{log.read_text()}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"timed out waiting:\n{log.read_text()}")


def _signal_when(ready, proc: subprocess.Popen, log: Path, signum: int, timeout: float = 180) -> str:
    """Send ``signum`` to ``proc`` once ``ready()`` holds, wait for it to end; returns its log."""
    try:
        _wait_for(ready, proc, log)
        proc.send_signal(signum)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return log.read_text()


def _refused(args: list[str], pid: int, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run ``nasattn ARGS`` in-process against a folder another process has locked: exit 2, a message naming
    ``pid``, no traceback; returns its stderr. The refusal is the command's own lock_run_folder against a
    real flock of another process; a subprocess would only add a Python and torch start."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("NASATTN_DATA", raising=False)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, (args, res.output, res.exception)
    assert f"pid {pid}" in res.stderr and "Traceback" not in res.output, res.stderr
    return res.stderr


def _holder(folder: Path, tmp_path: Path) -> subprocess.Popen:
    """Another process that takes the folder's lock and keeps it until killed."""
    code = ("import sys, time\nfrom nasattn.rundir import lock_run_folder\n"
            f"with lock_run_folder({str(folder)!r}, 'holder test'):\n    print('locked', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(tmp_path), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.slow
def test_a_locked_folder_refuses_search_ablate_and_train_naming_the_pid(tmp_path, monkeypatch):
    out = tmp_path / "run"
    holder = _holder(out, tmp_path)
    try:
        for args in (TINY_SEARCH + ["--out", str(out)],
                     ["ablate", "--preset", "baseline", "--data", "eurosat-mini", "--out", str(out)],
                     ["train", "--preset", "baseline", "--data", "eurosat-mini", "--out", str(out)]):
            assert "holder test" in _refused(args, holder.pid, monkeypatch)
    finally:
        holder.kill()
        holder.wait()
    # the holder died with kill -9 (SIGKILL): its lock file stays, its lock does not
    assert (out / ".nasattn.lock").is_file()
    again = _holder(out, tmp_path)
    again.kill()
    again.wait()


def check_interrupted_search(text: str, out: Path, command: str) -> None:
    """One resume line naming the command as typed, a checkpoint of the running trial, outputs written."""
    lines = [ln for ln in text.splitlines() if ln.startswith("interrupted: ")]
    assert len(lines) == 1, text
    m = re.match(r"interrupted: (\d+) finished, (\d+) checkpointed; continue with `(.*)`$", lines[0])
    assert m and int(m.group(2)) >= 1, lines[0]  # the running trial reported an epoch, so it has a checkpoint
    assert f"--out {out} --resume" in lines[0] and command in lines[0]
    assert (out / "trials.csv").is_file() and (out / "study.db").is_file()
    for bad in ("Traceback", "Fatal Python error", "Stack trace", "*** SIG"):
        assert bad not in text, text


@pytest.mark.slow
def test_a_signalled_ablation_writes_its_csv_and_exits_143(tmp_path):
    out = tmp_path / "abl"
    log = tmp_path / "abl.log"
    args = ["ablate", "--preset", "baseline", "--data", "eurosat-mini", "--seeds", "0", "--epochs", "30",
            "--width-mult", "0.125", "--include", "no_attention", "--set", "max_steps_per_epoch=2",
            "--set", "resources.max_concurrent=1", "--set", "report=false", "--set", "zero_cost=false", "--no-live",
            "--out", str(out)]
    proc = _start(args, tmp_path, log)
    text = _signal_when(lambda: any(p.stat().st_size for p in out.glob("*/*/result.json")), proc, log, signal.SIGTERM)
    assert proc.returncode == 143, text
    lines = [ln for ln in text.splitlines() if ln.startswith("interrupted: ")]
    assert len(lines) == 1 and f"--out {out} --resume" in lines[0] and "nasattn ablate" in lines[0], text
    assert re.search(r"interrupted: \d+ finished, [1-9]\d* checkpointed", lines[0]), lines[0]
    rows = pd.read_csv(out / "ablation.csv")
    assert "UNFINISHED" in set(rows["status"]), rows
    assert not [c for c in rows.columns if c.startswith("zc_")]  # zero_cost=false: no training-free scores
    assert not re.search(r"seed\d+ failed", text), text  # the interrupted run did not fail
    assert "Traceback" not in text and "Fatal Python error" not in text


@pytest.mark.slow
def test_a_signalled_training_exits_130_with_one_line_and_no_traceback(tmp_path):
    log = tmp_path / "train.log"
    out = tmp_path / "run"
    proc = _start(["train", "--preset", "baseline", "--data", "eurosat-mini", "--width-mult", "0.125", "--epochs", "200",
                   "--threads", "1", "--no-progress", "--out", str(out)], tmp_path, log)
    text = _signal_when(lambda: "epoch 1:" in log.read_text(), proc, log, signal.SIGINT, timeout=60)
    assert proc.returncode == 130, text
    assert "interrupted (SIGINT)" in text and "Traceback" not in text and "KeyboardInterrupt" not in text
    assert not (out / "metrics.json").exists()


@pytest.mark.slow
def test_a_signalled_fidelity_study_is_locked_writes_its_csv_and_exits_130(tmp_path, monkeypatch):
    from test_fidelity import _fidelity_args, _finished_search

    search = tmp_path / "search"
    _finished_search(search)
    fid = search / "fidelity"
    log = tmp_path / "fid.log"
    args = _fidelity_args(search, "--set", "recipe.epochs=200")
    proc = _start(args, tmp_path, log)
    try:
        _wait_for(lambda: any(p.stat().st_size for p in fid.glob("tune/*/result.json")), proc, log)
        _refused([*args, "--resume"], proc.pid, monkeypatch)  # the same folder while the first runs: refused
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert proc.returncode == 130, text
    lines = [ln for ln in text.splitlines() if ln.startswith("interrupted: ")]
    assert len(lines) == 1, text
    assert re.match(r"interrupted: 0 finished, \d+ checkpointed; continue with `nasattn fidelity .*"
                    rf"--out {re.escape(str(fid))} --resume`$", lines[0]), lines[0]
    assert (fid / "fidelity.csv").is_file() and (fid / "trials.json").is_file()
    for bad in ("Traceback", "Fatal Python error"):
        assert bad not in text, text
