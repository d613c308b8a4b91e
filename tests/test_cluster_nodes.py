"""Two Ray nodes that share no disk (:mod:`twonode`): the head has no CPUs, the worker node sees its
own empty ``--out``, data cache and data folder. The driver is ``nasattn`` in a subprocess, outside
the worker's namespace, joining the cluster with ``ray.address``, exactly as a user's would.

One module-scoped cluster and one search serve several tests (each search pays a Python, torch and
Ray start); the whole module runs in about a minute and a half on 2 cores.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nasattn.data.sources import MINI_DIR, MINI_NAME
from nasattn.rundir import is_run_content
from nasattn.schema import (ABLATION_CSV, BEST_DIR, DONE_MARKER, ERROR, ERROR_FILE, EXPERIMENT, MODEL_FILE, RUN_DIR, RUN_FILES, STATUS,
                            TRIALS_CSV, VARIANT, TrialStatus)
from test_cluster_home import S3_CREDENTIALS  # set before the nodes start
from twonode import WORKER_IP, TwoNodes, two_node_cluster

pytestmark = pytest.mark.slow

NASATTN = [sys.executable, "-m", "nasattn.cli.main"]
ROOT = Path(__file__).resolve().parents[1]


def search_args(cluster: TwoNodes, out: Path, *extra: str) -> list[str]:
    """README's cluster command (the quickstart study, checkpoints off) cut to 2 trials of 1 epoch of 2 steps,
    one at a time (one trial process on the worker, reused)."""
    sets = {"ray.address": cluster.address, "train.checkpoint_every": 0, "budget.trials": 2, "budget.epochs": 1,
            "budget.max_steps_per_epoch": 2, "train.width_mult": 0.125, "report": "false", "resources.max_concurrent": 1}
    return ["search", str(ROOT / "studies" / "quickstart.yaml"), *(f"--set={k}={v}" for k, v in sets.items()),
            "--out", str(out), "--no-live", *extra]


def nasattn(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, outside the worker's namespace (it keeps the test's NASATTN_CACHE)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "COLUMNS": "200"}
    return subprocess.run([*NASATTN, *args], capture_output=True, text=True, timeout=timeout, env=env)


def trial_rows(out: Path) -> list[dict[str, str]]:
    with open(out / TRIALS_CSV, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, _isolated_cache) -> dict:
    """The cluster and its private folders: ``search`` (an --out), ``data`` (a dataset on the head only), the cache."""
    base = tmp_path_factory.mktemp("twonode")
    folders = {"search": base / "search", "headonly": base / "headonly", "data": base / "data", "ablation": base / "ablation",
               "cache": Path(os.environ["NASATTN_CACHE"])}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in S3_CREDENTIALS.items():  # every node needs the storage's credentials in its environment
            mp.setenv(key, value)
        yield from _cluster(folders, base)


def _cluster(folders: dict, base: Path) -> Iterator[dict]:
    with two_node_cluster(list(folders.values())) as cluster:
        # a 3-class dataset on the head's disk (the worker sees an empty folder there)
        for cls in sorted(p.name for p in MINI_DIR.iterdir() if p.is_dir())[:3]:
            shutil.copytree(MINI_DIR / cls, folders["data"] / cls)
        yield {"cluster": cluster, "base": base, **folders}


@pytest.fixture(scope="module")
def search(nodes: dict) -> subprocess.CompletedProcess:
    """One search of two trials on eurosat-mini, no checkpoints, output on the driver's disk (the worker has its own)."""
    return nasattn(*search_args(nodes["cluster"], nodes["search"]))


def test_the_worker_sees_its_own_disk(nodes: dict):
    """The harness itself: what the head writes into a private folder the worker node does not see."""
    cluster: TwoNodes = nodes["cluster"]
    assert (nodes["data"] / "AnnualCrop").is_dir()
    assert cluster.worker_files(nodes["data"]) == []
    assert cluster.on_worker("test", "-d", str(nodes["data"] / "AnnualCrop")).returncode == 1


def test_a_search_trains_every_trial_on_the_worker_node(nodes: dict, search: subprocess.CompletedProcess):
    assert search.returncode == 0, search.stdout + search.stderr
    assert nodes["cluster"].address in search.stdout
    rows = trial_rows(nodes["search"])
    assert [r[STATUS] for r in rows] == ["COMPLETE", "COMPLETE"]
    # the head has no CPUs: the trials ran on the worker, which decoded eurosat-mini into the driver's
    # NASATTN_CACHE (it travels in the job's runtime environment), on its own disk
    assert any(f.endswith(".pt") for f in nodes["cluster"].worker_files(nodes["cache"]))
    # the bundled sample travels by name, not as the driver's path to it (Tune's params.json: the trial's config)
    configs = [json.loads(p.read_text()) for p in sorted((nodes["search"] / EXPERIMENT).glob("*/params.json"))]
    assert [c["data"] for c in configs] == [MINI_NAME, MINI_NAME]


def test_every_run_folder_comes_home_to_the_driver(nodes: dict, search: subprocess.CompletedProcess):
    """#25 item 1: the worker's run folders reach ``--out`` on the driver's disk, whole; best/ too."""
    assert search.returncode == 0, search.stdout + search.stderr
    out = nodes["search"]
    for row in trial_rows(out):
        run_dir = Path(row[RUN_DIR])
        assert run_dir.is_relative_to(out), row
        assert [f for f in RUN_FILES if not (run_dir / f).is_file()] == [], row
        assert not (run_dir / ERROR_FILE).exists()
    assert (out / BEST_DIR / MODEL_FILE).is_file()


def test_data_on_the_head_only_is_refused_before_the_first_trial(nodes: dict):
    """The dataset exists where the driver runs, not on the worker node: exit 2 naming the node and the path."""
    out = nodes["headonly"]
    res = nasattn(*search_args(nodes["cluster"], out, "--data", str(nodes["data"])))
    assert res.returncode == 2, res.stdout + res.stderr
    assert WORKER_IP in res.stderr and str(nodes["data"]) in res.stderr, res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert not any(is_run_content(p) for p in out.iterdir())  # (the folder itself is the harness's mount point)


ABLATION = """\
name: twonode-ablation
base: {preset: baseline}
include: []
variants:
  diverges: {recipe: {lr: 1.0e+30}}     # fails on the worker node: its error must reach the driver
seeds: [0]
data: eurosat-mini
epochs: 8                                # base trains on while the signal waits for the diverged trial's line
max_steps_per_epoch: 2
width_mult: 0.125
zero_cost: false
recipe: {schedule: cosine, eval_batch_size: 256}
resources: {cpus_per_trial: 1, max_concurrent: 2}
checkpoint_every: 1
report: false
"""


def test_an_ablation_with_checkpoints_on_s3_interrupted_and_resumed_comes_home(nodes: dict, tmp_path: Path):
    """#25 item 6: on two nodes, an ablation keeps Tune's checkpoints on an S3-compatible storage, is interrupted
    after its first epochs, resumes from there, and ends with every run folder under ``--out`` on the driver;
    the variant that fails on the worker names its error and the worker's node in ablation.csv."""
    from pyarrow import fs as pafs

    from test_cluster_home import _s3_server
    from test_interrupts import _signal_when

    cluster: TwoNodes = nodes["cluster"]
    out = nodes["ablation"]
    with _s3_server() as port:
        query = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
        pafs.FileSystem.from_uri(f"s3://nas?{query}&allow_bucket_creation=true")[0].create_dir("nas")
        study = tmp_path / "ablation.yaml"
        study.write_text(ABLATION + f"ray: {{address: '{cluster.address}', storage: 's3://nas/abl?{query}'}}\n")
        args = ["ablate", str(study), "--out", str(out), "--no-live"]
        log = tmp_path / "first.log"
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "COLUMNS": "200"}
        proc = subprocess.Popen([*NASATTN, *args], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
        # the signal waits for base's first epoch and for the diverged trial's error line (Tune may take it in
        # after base's epoch; a trial error Tune never took in is not shown: tests/test_ray_session.py)
        first = _signal_when(lambda: " epoch 1:" in (text := log.read_text()) and "TrainingDivergedError" in text,
                             proc, log, signal.SIGINT)
        assert proc.returncode == 130, first
        assert "--resume" in first
        # the diverged variant: one line under its trial's, no traceback from Tune
        assert "\n    TrainingDivergedError: non-finite training loss" in first and "Traceback" not in first, first
        resumed = nasattn(*args, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with open(out / ABLATION_CSV, newline="") as f:
        rows = {r[VARIANT]: r for r in csv.DictReader(f)}
    assert rows["base"][STATUS] == TrialStatus.COMPLETE, rows["base"]
    base_dir = Path(rows["base"][RUN_DIR])
    assert base_dir.is_relative_to(out) and [f for f in RUN_FILES if not (base_dir / f).is_file()] == []
    assert json.loads((base_dir / DONE_MARKER).read_text())["epoch"] == 8
    assert rows["diverges"][STATUS] in (TrialStatus.ERROR, TrialStatus.FAILED), rows["diverges"]
    assert f"(on node {WORKER_IP}" in rows["diverges"][ERROR], rows["diverges"]
    assert cluster.worker_files(out) == []  # nothing of the run stayed on the worker's own disk
