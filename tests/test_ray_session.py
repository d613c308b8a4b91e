"""The embedded Ray dies with its driver; bad Ray addresses, missing resources and drivers fail early and clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nasattn.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NASATTN = [sys.executable, "-m", "nasattn.cli.main"]

DRIVER = """
import time
import ray
from nasattn.tune import ray_session
import psutil
with ray_session(None, num_cpus=2):
    time.sleep(1.5)  # long enough for the one worker per CPU Ray starts by default when a driver connects
    cmds = [p.cmdline() for p in psutil.Process().children(recursive=True)]
    workers = [c for c in cmds if c and (c[0].startswith("ray::IDLE") or c[1:2] and c[1].endswith("default_worker.py"))]
    print("WORKERS_BEFORE_WORK", len(workers), flush=True)
    @ray.remote
    def pid():
        import os
        return os.getpid()
    ray.get(pid.remote())
    me = psutil.Process()
    kids = [p for p in me.children(recursive=True)]
    for p in kids:
        print("CHILD", p.pid, " ".join(p.cmdline()), flush=True)
    print("READY", flush=True)
    time.sleep(600)
"""


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT), "COLUMNS": "200", **extra}


def _alive(pids: list[int]) -> list[int]:
    import ray  # noqa: F401 - Ray's bundled psutil
    import psutil

    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.slow
def test_kill_9_of_the_driver_takes_the_embedded_ray_with_it(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=_env(), start_new_session=True)
    children: dict[int, str] = {}
    idle = None  # the driver prints how many Python workers Ray had started before any work
    try:
        deadline = time.time() + 180
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("WORKERS_BEFORE_WORK"):
                idle = int(line.split()[1])
            if line.startswith("CHILD"):
                _, pid, cmd = line.rstrip("\n").split(" ", 2)
                children[int(pid)] = cmd
            if line.startswith("READY") or time.time() > deadline:
                break
        ray_kids = {p: c for p, c in children.items() if "nasattn.tune.reaper" not in c}
        assert any("raylet" in c for c in ray_kids.values()) and any("ray::" in c for c in ray_kids.values()), children
        # no dashboard: the only dashboard process Ray 2.60 starts is its API server without frontend
        assert all("--disable-frontend" in c for c in ray_kids.values() if "dashboard.py" in c), children
        assert idle == 0  # no Python worker before work asks for one (Ray's default: one per CPU, used or not)
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone, as a crash would
        proc.wait()
        deadline = time.time() + 8
        while time.time() < deadline and _alive(list(children)):
            time.sleep(0.25)
        left = {p: children[p] for p in _alive(list(children))}
        assert not left, left
    finally:
        for pid in _alive(list(children)):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


def _study(tmp_path: Path, **fields) -> Path:
    study = {
        "name": "tiny", "space": str(ROOT / "search_spaces" / "eurosat.yaml"), "data": "eurosat-mini",
        "budget": {"trials": 1, "epochs": 1, "max_steps_per_epoch": 1}, "early_stopping": "none",
        "resources": {"cpus_per_trial": 1}, "output": str(tmp_path / "out"), "report": False,
    }
    study.update(fields)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


@pytest.mark.parametrize("address, words", [
    ("127.0.0.1:1", ["'127.0.0.1:1'", "no Ray cluster answers at 127.0.0.1:1 within 3 s"]),
    ("auto", ["'auto'", "no Ray cluster found"]),
])
def test_an_unreachable_ray_address_exits_2_quickly_naming_it(tmp_path, address, words, monkeypatch):
    """In-process (the command's own error path; a subprocess would only add a Python and torch start)."""
    import ray
    from typer.testing import CliRunner

    from nasattn.cli.main import app

    study = _study(tmp_path, ray={"address": address})
    for key, value in dict(TMPDIR=str(tmp_path), RAY_TMPDIR=str(tmp_path), COLUMNS="200").items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    t0 = time.time()
    res = CliRunner().invoke(app, ["search", str(study), "--no-live"])
    took = time.time() - t0
    assert res.exit_code == 2, (res.output, res.exception)
    assert "Traceback" not in res.output and all(w in " ".join(res.stderr.split()) for w in words), res.stderr
    assert not (tmp_path / "out").exists() and not ray.is_initialized()
    assert took < 15, took  # the reachability check itself waits 3 s at most


def test_resources_the_cluster_lacks_are_rejected_before_anything_is_written(tmp_path):
    from nasattn.ablation import load_ablation, run_ablation
    from nasattn.search.run import run_search
    from nasattn.search.study import load_study

    study = _study(tmp_path, resources={"cpus_per_trial": 1, "gpus_per_trial": 0.5, "num_gpus": 0})
    with pytest.raises(ConfigError, match=r"gpus_per_trial = 0.5, but the Ray cluster has 0 GPUs"):
        run_search(load_study(study), live=False)
    assert not (tmp_path / "out").exists()
    out = tmp_path / "abl"
    overrides = {"base": {"preset": "baseline"}, "include": [], "seeds": [0], "data": "eurosat-mini", "epochs": 1,
                 "resources": {"cpus_per_trial": 4, "num_cpus": 2}, "output": str(out), "report": False}
    with pytest.raises(ConfigError, match=r"cpus_per_trial = 4, but the Ray cluster has 2 CPUs"):
        run_ablation(load_ablation(None, overrides), live=False)
    assert not out.exists()


def test_a_missing_postgresql_driver_names_the_package(monkeypatch):
    from nasattn.search.recorder import create_or_load_study

    monkeypatch.setitem(sys.modules, "psycopg2", None)  # as if psycopg2 were not installed
    with pytest.raises(ConfigError, match=r"pip install psycopg2-binary") as info:
        create_or_load_study("postgresql+psycopg2://u:secret@127.0.0.1:1/db", "s", ["maximize"])
    assert "secret" not in str(info.value)


def test_the_embedded_ray_never_joins_a_cluster_left_on_the_machine(monkeypatch):
    """A cluster recorded by `ray start` (or RAY_ADDRESS) must not capture the embedded Ray: plain
    ``ray.init()`` would try to join it (and hang or fail when that head is gone)."""
    from nasattn.tune.session import ray_session

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens there
    with ray_session(None, num_cpus=1) as resources:
        assert resources.get("CPU") == 1


def test_an_error_no_one_fetched_leaves_no_ray_traceback_in_the_output(capfd):
    """A trial that fails just before a Ctrl-C leaves an error Tune never fetched; Ray would log its traceback
    as an "Unhandled error" when the reference goes (seen on CI). nasattn's driver keeps it out."""
    import gc
    import time

    import ray

    from nasattn.tune.session import ray_session

    @ray.remote
    def fails() -> None:
        raise ValueError("an error no one fetched")

    with ray_session(None, num_cpus=1):
        ref = fails.remote()
        time.sleep(2)  # the task has failed; nobody asked for its result
        del ref
        gc.collect()
        time.sleep(1.5)  # Ray reports a dropped error from a background thread
    err = capfd.readouterr().err
    assert "Unhandled error" not in err and "an error no one fetched" not in err, err
