"""Results come home (#25): the sink that writes run folders sent from other nodes, the refusal of checkpoints
no other node reaches, errors that name their node, and best/ that names what it lacks."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from nasattn.config import ConfigError
from nasattn.schema import (
    ARCH_FILE, BEST_MISSING, DONE_MARKER, ERROR_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE, PLACEMENT_FILE,
    PREDICTIONS_FILE, RUN_FILES, TRAINED_ARCH_FILE,
)
from nasattn.tune.home import AWAY_ROOT, HomeWriter
from nasattn.tune.resources import RayConfig, check_storage, tune_storage

ROOT = Path(__file__).resolve().parents[1]
S3_CREDENTIALS = dict(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true")
"""For moto's S3 server on loopback (any key works); set before Ray starts, as a user sets theirs."""


# ------------------------------------------------------------------------------ the sink, without Ray
def test_home_writer_writes_a_run_folder_as_a_whole_and_replaces_an_earlier_attempt(tmp_path):
    out = tmp_path / "out"
    run = out / "runs" / "base" / "seed0"
    run.mkdir(parents=True)
    (run / ERROR_FILE).write_text("OSError: earlier attempt\n")
    (run / "stopped.json").write_text("{}")  # written by the driver: kept
    sink = HomeWriter(str(out), node_id="home")
    files = {name: f"{name} bytes".encode() for name in RUN_FILES} | {DONE_MARKER: b'{"final": true}'}
    assert sink.done(str(run)) is None
    assert sink.receive(str(run), files) == str(run.resolve())
    assert sorted(p.name for p in run.iterdir()) == sorted([*files, "stopped.json"])
    assert (run / MODEL_FILE).read_bytes() == f"{MODEL_FILE} bytes".encode()
    assert sink.done(str(run)) == '{"final": true}'
    assert [p for p in run.parent.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


@pytest.mark.parametrize("where, name", [("elsewhere", METRICS_FILE), ("inside", "../escape"), ("inside", "/etc/x")])
def test_home_writer_refuses_a_folder_outside_the_output_or_a_name_leaving_the_folder(tmp_path, where, name):
    out = tmp_path / "out"
    out.mkdir()
    run = (tmp_path / "other" / "1") if where == "elsewhere" else (out / "trials" / "1")
    with pytest.raises(ConfigError, match="not written"):
        HomeWriter(str(out), node_id="home").receive(str(run), {name: b"x"})
    assert not run.exists() and not (out / "trials" / "escape").exists()
    assert HomeWriter(str(out), node_id="home").done(str(tmp_path / "other" / "1")) is None


# ------------------------------------------------------------------------------ checkpoints on a cluster
def test_checkpoints_on_several_nodes_with_a_local_storage_are_refused_naming_what_to_set():
    with pytest.raises(ConfigError) as e:
        check_storage(RayConfig(address="10.0.0.1:6379"), 2, "train.checkpoint_every", "study.yaml")
    text = str(e.value)
    assert text.startswith("study.yaml: checkpoints are on (train.checkpoint_every >= 1)")
    assert "2 nodes" in text and "the output folder" in text
    assert "ray.storage" in text and "s3://" in text and "ray.shared_fs: true" in text
    assert "train.checkpoint_every: 0" in text
    with pytest.raises(ConfigError, match="ray.storage '/data/tune'"):  # a local path, not declared shared
        check_storage(RayConfig(address="h:1", storage="/data/tune"), 3, "checkpoint_every", "a.yaml")
    with pytest.raises(ConfigError, match="1 nodes"):  # a driver joined through ray:// is not on a worker's node
        check_storage(RayConfig(address="ray://h:10001"), 1, "checkpoint_every", "a.yaml")


@pytest.mark.parametrize("cfg, nodes, checkpoints", [
    (RayConfig(), 1, "train.checkpoint_every"),                                    # one node
    (RayConfig(address="h:1"), 2, None),                                           # checkpoints off
    (RayConfig(address="h:1", shared_fs=True), 2, "train.checkpoint_every"),       # declared shared
    (RayConfig(address="h:1", storage="s3://bucket/x"), 2, "train.checkpoint_every"),  # a URI every node reaches
])
def test_checkpoints_that_every_node_reaches_are_allowed(cfg, nodes, checkpoints):
    check_storage(cfg, nodes, checkpoints, "study.yaml")


def test_ray_storage_must_be_a_uri_or_an_absolute_path():
    with pytest.raises(ValueError, match="absolute path"):
        RayConfig(storage="relative/tune")
    assert RayConfig(storage="s3://b/p").storage == "s3://b/p"


def test_tune_storage_is_one_stable_folder_per_output_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert tune_storage(RayConfig(), a) == str(a)
    cfg = RayConfig(storage="s3://bucket/nas/")
    assert tune_storage(cfg, a) == tune_storage(cfg, a)
    assert tune_storage(cfg, a).startswith("s3://bucket/nas/a-") and tune_storage(cfg, b).startswith("s3://bucket/nas/b-")
    assert tune_storage(cfg, tmp_path / "x" / "a") != tune_storage(cfg, a)  # same name, another folder
    local = RayConfig(storage="s3://bucket?endpoint_override=127.0.0.1:9000&scheme=http")
    folder = tune_storage(cfg, a).split("/")[-1]
    assert tune_storage(local, a) == f"s3://bucket/{folder}?endpoint_override=127.0.0.1:9000&scheme=http"


def test_a_search_on_two_nodes_with_local_checkpoints_exits_2_before_writing(tmp_path, monkeypatch):
    from nasattn.cli.main import app
    from nasattn.tune import resources

    monkeypatch.setattr(resources, "expected_cluster", lambda res, ray, data=None: ({"CPU": 4.0, "GPU": 0.0}, 2))
    out = tmp_path / "search"
    res = CliRunner().invoke(app, ["search", "quickstart", "--out", str(out), "--set", "ray.address=127.0.0.1:1"])
    assert res.exit_code == 2, res.output
    assert "checkpoints are on (train.checkpoint_every >= 1)" in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert not out.exists()


# ------------------------------------------------------------------------------ errors from other nodes
def _ray_task_error(cause: BaseException, ip: str):
    from ray.exceptions import RayTaskError

    return RayTaskError("train", "Traceback ...\n" + repr(cause), cause, pid=4242, ip=ip)


def test_result_rows_name_the_trials_own_exception_and_its_node():
    from nasattn.data import DataError
    from nasattn.tune import result_rows

    error = _ray_task_error(DataError("no class folders in /data/x"), "10.1.2.3")
    [row] = result_rows([SimpleNamespace(metrics={}, error=error, config={"index": 0}, path="/o/tune/0-a")])
    assert row["status"] == "ERROR"
    assert row["error"] == "DataError: no class folders in /data/x (on node 10.1.2.3)"


def test_the_study_record_takes_the_error_line_and_node_of_tunes_trace_when_no_error_file_came_home(tmp_path):
    from nasattn.search.recorder import _error_text

    trace = tmp_path / "error.txt"  # what Tune writes in the driver's trial folder for a RayTaskError
    trace.write_text("Failure # 1 (occurred at 2026-12-05_03-00-00)\n"
                     "ray::ImplicitFunc.train() (pid=4242, ip=10.9.9.9, actor_id=abc, repr=func)\n"
                     "  File \"trainable.py\", line 3, in train\nValueError: bad width\n")
    trial = SimpleNamespace(config={"run_dir": str(tmp_path / "run")}, trial_id="t1", error_file=str(trace),
                            get_error=lambda: None)
    assert _error_text(trial) == "ValueError: bad width (on node 10.9.9.9)"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ERROR_FILE).write_text("KeyError: 'x' (on node 10.9.9.9 (abcd1234))\n")  # sent home: first
    assert _error_text(trial) == "KeyError: 'x' (on node 10.9.9.9 (abcd1234))"


# ------------------------------------------------------------------------------ best/
def test_best_names_the_run_files_its_trial_folder_lacks(tmp_path):
    from nasattn.search.run import _best_run_metrics

    out, best_dir = tmp_path / "out", tmp_path / "out" / "best"
    run = out / "trials" / "3"
    run.mkdir(parents=True)
    best_dir.mkdir()
    (best_dir / MODEL_FILE).write_bytes(b"an earlier best's weights")
    (run / METRICS_FILE).write_text(json.dumps({"test_accuracy": 0.5}))
    (run / HISTORY_FILE).write_text("epoch\n1\n")
    (run / ARCH_FILE).write_text("name: x\n")
    best = SimpleNamespace(number=3, user_attrs={"run_dir": str(run), "test_accuracy": 0.5})
    metrics = _best_run_metrics(out, best, best_dir)
    assert metrics[BEST_MISSING] == [PREDICTIONS_FILE, MODEL_FILE]
    assert metrics["test_accuracy"] == 0.5
    assert sorted(p.name for p in best_dir.iterdir()) == sorted([HISTORY_FILE, TRAINED_ARCH_FILE])
    (run / METRICS_FILE).unlink()
    assert _best_run_metrics(out, best, best_dir)[BEST_MISSING] == [METRICS_FILE, PREDICTIONS_FILE, MODEL_FILE]


def test_a_trial_outside_ray_writes_in_place_and_starts_no_ray(tmp_path):
    import ray

    from nasattn.tune.home import trip

    assert not ray.is_initialized()
    assert trip(tmp_path / "run", "t1") is None
    assert not ray.is_initialized()


# ------------------------------------------------------------------------------ through Ray, one node playing away
@pytest.fixture(scope="module")
def one_cpu_ray():
    """One embedded Ray of one CPU for this module's trials, started with the S3 server's credentials in its
    environment (a trial uploads its own checkpoints to the storage)."""
    from nasattn.tune import ray_session

    with pytest.MonkeyPatch.context() as mp:
        for key, value in S3_CREDENTIALS.items():
            mp.setenv(key, value)
        with ray_session(None, num_cpus=1):
            yield


def _grid_config(run_dir: Path, data: str = "eurosat-mini") -> dict:
    from nasattn.presets import get_preset

    return {"arch": get_preset("baseline").arch.scaled(0.125).to_dict(), "data": data, "max_steps_per_epoch": 1,
            "recipe": {"epochs": 1, "batch_size": 32, "eval_batch_size": 256}, "run_dir": str(run_dir),
            "zero_cost_batch": 0}


@pytest.mark.slow
def test_a_trial_away_from_home_sends_its_run_folder_and_its_error_home(tmp_path, one_cpu_ray):
    """A sink whose home is another node id: the trial writes in its node's scratch and sends the folder home."""
    from ray import tune

    from nasattn.tune import grid_trainable, run_grid
    from nasattn.tune.home import home_sink

    out = tmp_path / "out"
    ok, bad = out / "runs" / "ok", out / "runs" / "bad"
    with home_sink(out, node_id="f" * 56):
        grid = run_grid([_grid_config(ok), _grid_config(bad, data=str(tmp_path / "no-such-data"))],
                        storage_path=tmp_path / "tune", max_concurrent=1)
        before = {p.name: p.stat().st_mtime_ns for p in ok.iterdir()}
        assert run_grid([_grid_config(ok)], storage_path=tmp_path / "tune", name="skipped") == []  # DONE at home
        # a trial of a finished run started anyway (as a restored search may re-run one): re-reported from home
        [again] = tune.Tuner(grid_trainable([_grid_config(ok)], 1, 0), param_space={"index": tune.grid_search([0])},
                             run_config=tune.RunConfig(name="again", storage_path=str(tmp_path / "tune"))).fit()
    assert again.error is None and again.metrics["final"] is True
    assert {p.name: p.stat().st_mtime_ns for p in ok.iterdir()} == before  # re-reported from home, not retrained
    errors = [r.error for r in grid if r.error is not None]
    assert len(errors) == 1
    assert sorted(p.name for p in ok.iterdir()) == sorted([*RUN_FILES, DONE_MARKER, PLACEMENT_FILE])
    done = json.loads((ok / DONE_MARKER).read_text())
    assert done["run_dir"] == str(ok) and done["final"] is True
    placement = json.loads((ok / PLACEMENT_FILE).read_text())
    assert placement["node"].startswith("node ") and placement["sent_home"] is True
    first = (bad / ERROR_FILE).read_text().splitlines()[0]
    assert first.startswith("DataNotFoundError: dataset not found: ") and first.endswith(")") and "(on node " in first
    ids = [Path(r.path).name.split("-", 1)[1] for r in grid]
    scratch = Path(tempfile.gettempdir()) / AWAY_ROOT  # the trials' node-local scratch folders went once home had them
    assert len(ids) == 2 and not [p for p in scratch.glob("*-*") if p.name.split("-", 1)[1] in ids]


@contextlib.contextmanager
def _s3_server() -> Iterator[int]:
    """moto's S3-compatible server on a free loopback port (skips when moto is not installed)."""
    pytest.importorskip("moto.server", reason="moto[server] (a dev extra) serves S3 on loopback")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_checkpoints_on_an_s3_storage_resume_a_trial_and_go_when_it_finished(tmp_path, one_cpu_ray):
    """Tune's storage on an S3-compatible server: the checkpoint is found there, a resumed trial starts from it,
    and the checkpoints of finished trials are removed there."""
    import optuna
    from pyarrow import fs as pafs

    from nasattn.search.run import remove_finished_checkpoints
    from nasattn.tune import run_grid
    from nasattn.tune.runner import latest_checkpoint, uri_checkpoints, uri_join

    with _s3_server() as port:
        query = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
        pafs.FileSystem.from_uri(f"s3://nas?{query}&allow_bucket_creation=true")[0].create_dir("nas")
        storage = f"s3://nas/exp?{query}"
        cfg = {**_grid_config(tmp_path / "first"), "checkpoint_every": 1, "checkpoint_budget": None}
        cfg["recipe"]["epochs"] = 2
        run_grid([cfg], storage_path=storage, name="tune")
        ckpt = latest_checkpoint(uri_join(storage, "tune"), 0)
        assert ckpt is not None and ckpt.startswith("s3://nas/exp/tune/0-") and ckpt.endswith(f"/checkpoint_000000?{query}")
        [result] = run_grid([{**cfg, "run_dir": str(tmp_path / "second")}], storage_path=storage, name="tune", resume=True)
        exp = uri_join(storage, "tune")
        s3, path = pafs.FileSystem.from_uri(exp)
        with s3.open_output_stream(f"{path}/1-running/checkpoint_000003/train_state.pt") as f:
            f.write(b"a running trial's")
        study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
        study.tell(study.ask(), 0.5)  # trial 0 finished; trial 1 has no finished record
        assert remove_finished_checkpoints(exp, f"sqlite:///{tmp_path / 's.db'}", "s") == 1
        assert uri_checkpoints(exp) == [("1-running", "checkpoint_000003")]
    assert result.error is None
    first, second = (json.loads((tmp_path / d / DONE_MARKER).read_text()) for d in ("first", "second"))
    assert first["epoch"] == second["epoch"] == 2
    assert "time_to_first_epoch_s" in first and "time_to_first_epoch_s" not in second  # the second resumed at epoch 2


@pytest.mark.slow
def test_the_data_probe_runs_on_each_node_of_a_real_ray(tmp_path, one_cpu_ray):
    """One embedded node lists the folder the driver lists, and a folder removed after the driver looked is
    named (test_data_on_nodes.py tests the decision with known answers)."""
    from nasattn.data.sources import MINI_DIR
    from nasattn.tune import nodes

    data = tmp_path / "data"
    for cls in ("Forest", "River"):
        shutil.copytree(MINI_DIR / cls, data / cls)
    found = nodes.probe_nodes(str(data), nodes.trial_nodes())
    assert list(found.values()) == [(len(list(data.rglob("*.jpg"))), None)]
    nodes.check_data_on_nodes(str(data))
    gone = nodes.probe_nodes(str(tmp_path / "gone"), nodes.trial_nodes())
    assert [why.split(":")[0] for _, why in gone.values()] == ["FileNotFoundError"]
