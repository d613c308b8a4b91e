"""Search: the space language, study validation, and real searches through Ray Tune + Optuna.

The end-to-end tests run on the bundled eurosat-mini sample with tiny networks (a few batches per
epoch). Where the CLI is the subject (exit codes, ``kill -9`` and resume, an existing Ray cluster, the
PostgreSQL storage) they run it in a subprocess, exactly as a user would; the search whose outputs are
read in detail runs in-process under the module's one Ray (``module_ray`` in conftest.py).
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from nasattn.cli.main import app
from nasattn.config import ConfigError
from nasattn.presets import get_preset
from nasattn.tune.resources import concurrency
from nasattn.search.space import NotInSpace, arch_point, build_arch_dict, canonical_arch, iter_dims, load_space, preset_points, sample_spec
from nasattn.search.run import run_search
from nasattn.search.study import load_study
from nasattn.spec import ArchSpec

ROOT = Path(__file__).resolve().parents[1]
EUROSAT_SPACE = ROOT / "search_spaces" / "eurosat.yaml"
NASATTN = [sys.executable, "-m", "nasattn.cli.main"]

# A small space: 2 plain stages; attention none or SE; lr 1e-3 or 1e8 (SGD at lr 1e8 diverges: a NaN trial).
TINY_SPACE = {
    "name": "tiny",
    "stem": {"options": {"none": None}},
    "stages": {
        "count": 2, "block": {"options": {"plain": None}}, "depth": 1,
        "width": {"base": {"choice": [8, 16]}, "growth": 2, "max": 64}, "downsample": "maxpool",
    },
    "attention": {"mode": "same", "type": {"options": {"none": None, "se": {"reduction": 4}}}},
    "head": {"options": {"gap_linear": {"dropout": 0.0}}},
    "dropblock": {"options": {"none": None}},
    "recipe": {"lr": {"choice": [0.01, 1.0e8]}, "optimizer": "sgd"},
}


def _study(tmp_path: Path, name: str = "study.yaml", **fields) -> Path:
    """A study file for a tiny, fast search on eurosat-mini (fields override the defaults)."""
    study = {
        "name": "tiny",
        "space": TINY_SPACE,
        "data": "eurosat-mini",
        "budget": {"trials": 3, "epochs": 2, "max_steps_per_epoch": 3},
        "sampler": {"type": "random", "seed": 0},
        "early_stopping": "none",
        # one trial at a time unless a test needs more: Tune reuses the trial process, each one more costs a
        # Python, torch and Ray start (about 6 s of CPU) on a suite bound by its 2 cores
        "resources": {"cpus_per_trial": 1, "max_concurrent": 1},
        # no training-free scores: they are the subject of test_zero_cost.py and test_fidelity.py
        "train": {"recipe": {"eval_batch_size": 256}, "checkpoint_every": 1, "zero_cost": False},
        "seeds": {"points": [{"stages.width.base": 8, "attention": "none", "recipe.lr": 0.01}]},
        "output": str(tmp_path / "out"),
    }
    for key, value in fields.items():
        study[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def _run(args: list[str], timeout: float = 420, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "COLUMNS": "160"}
    return subprocess.run([*NASATTN, *args], capture_output=True, text=True, timeout=timeout, env=env, **kw)


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ space
def test_space_conditionals_follow_the_choices():
    space = load_space(TINY_SPACE)
    conds = {d.name: d.condition for d in iter_dims(space)}
    assert "attention" in conds and "recipe.lr" in conds
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        spec, recipe = sample_spec(trial, space)
        att = spec.stages[0].attention.type
        seen.add(att)
        assert all(s.attention.type == att for s in spec.stages)  # mode: same
        assert [s.width for s in spec.stages] == [trial.params["stages.width.base"] * k for k in (1, 2)]
        assert recipe["optimizer"] == "sgd" and recipe["lr"] in (0.01, 1e8)
        study.tell(trial, 0.0)
    assert seen == {"none", "se"}


@pytest.mark.parametrize("name", ["baseline", "cbam", "balanced"])
def test_every_preset_is_a_point_of_the_eurosat_space(name):
    space = load_space(EUROSAT_SPACE)
    point = preset_points(space, [name])[name]
    arch = build_arch_dict(space, optuna.trial.FixedTrial(point))  # sampling the point gives the preset back
    assert canonical_arch(ArchSpec.from_dict(arch)) == canonical_arch(get_preset(name).arch)


def test_an_architecture_outside_the_space_is_rejected():
    space = load_space(TINY_SPACE)
    with pytest.raises(NotInSpace, match=r"^stages.count = 6, but the space fixes it at 2$"):
        arch_point(space, get_preset("cbam").arch)


@pytest.mark.parametrize(
    ("override", "field", "allowed"),
    [
        ({"budgett": {"trials": 3}}, "budgett", "allowed: name"),
        ({"sampler": {"type": "tpee"}}, "sampler.type", "'tpe'"),
        ({"budget": {"trials": 0}}, "budget.trials", "greater than or equal to 1"),
        ({"early_stopping": {"type": "asha", "reduction_factor": 1}}, "early_stopping.reduction_factor", "greater than 1"),
        ({"space": {"stages": {"block": {"options": {"wavelet": None}}}}}, "stages.block.options.wavelet",
         "allowed: double, plain, residual"),
        ({"space": {"attention": {"type": {"options": {"foo": None}}}}}, "attention.type.options.foo", "allowed: cbam"),
        ({"space": {"stages": {"depth": {"int": [3, 1]}}}}, "stages.depth.int", "low is above high"),
        ({"train": {"recipe": {"optimiser": "sgd"}}}, "optimiser", "allowed: epochs"),
        ({"train": {"recipe": {"epochs": 3}}}, "train.recipe", "set the epochs in budget.epochs"),
        ({"seeds": {"presets": ["resnet"]}}, "seeds.presets", "allowed: "),
    ],
)
def test_study_validation_names_file_field_and_allowed_values(override, field, allowed):
    with pytest.raises(ConfigError) as e:
        load_study(ROOT / "studies" / "quickstart.yaml", override)
    msg = str(e.value)
    assert ("quickstart.yaml" in msg or "eurosat.yaml" in msg) and field in msg and allowed in msg


def _draws(sampler, n: int = 4) -> list[tuple[str, dict[str, float]]]:
    """What ``sampler`` draws on a continuous 2-d problem (random and model-based draws differ there).

    Without the optional ``cmaes`` package CMA-ES's first model-based draw fails: where it fails shows too.
    """
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1) - (t.suggest_float("y", 0, 1) - 0.3) ** 2, n_trials=n,
                   catch=(ModuleNotFoundError,))
    return [(t.state.name, t.params) for t in study.trials]


@pytest.mark.parametrize("kind,cls", [("tpe", "TPESampler"), ("random", "RandomSampler"), ("cmaes", "CmaEsSampler"),
                                       ("nsga2", "NSGAIISampler"), ("gp", "GPSampler"), ("grid", "GridSampler")])
def test_every_sampler_is_built_seeded_and_draws_specs_of_the_space(tmp_path, kind, cls):
    from nasattn.search.searcher import make_sampler

    extra = {"nsga2": {"population_size": 4}, "random": {}, "grid": {}}.get(kind, {"n_startup_trials": 2})
    loaded = load_study(_study(tmp_path, sampler={"type": kind, "seed": 3, **extra}))
    sampler = make_sampler(loaded.study, loaded.space)
    assert type(sampler).__name__ == cls
    if "n_startup_trials" in extra:  # draws as Optuna's sampler built with n_startup_trials=2 draws them
        options = {"multivariate": True, "group": True, "constant_liar": True} if kind == "tpe" else {}
        reference = getattr(optuna.samplers, cls)(seed=3, n_startup_trials=2, **options)
        assert _draws(make_sampler(loaded.study, loaded.space)) == _draws(reference)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    for _ in range(3):
        trial = study.ask()
        spec, recipe = sample_spec(trial, loaded.space)
        assert spec.stages[0].width in (8, 16) and recipe["lr"] in (0.01, 1.0e8)
        study.tell(trial, float(spec.stages[0].width))


def test_empty_choice_and_presets_outside_the_space(tmp_path):
    bad = {**TINY_SPACE, "stages": {**TINY_SPACE["stages"], "depth": {"choice": []}}}
    with pytest.raises(ConfigError, match="stages.depth"):
        load_study(_study(tmp_path, space=bad))
    with pytest.raises(ConfigError, match="preset 'cbam' is not a point"):
        load_study(_study(tmp_path, seeds={"presets": ["cbam"]}))


def test_cli_bad_study_exits_2_without_traceback(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nspace: [unclosed\n")
    res = CliRunner().invoke(app, ["search", str(path)])
    assert res.exit_code == 2 and "broken.yaml" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["search", str(ROOT / "studies/quickstart.yaml"), "--set", "sampler.type=nope"])
    assert res.exit_code == 2 and "sampler.type" in res.output


def test_space_command_prints_size_presets_and_samples():
    res = CliRunner().invoke(app, ["space", str(EUROSAT_SPACE), "--samples", "2"])
    assert res.exit_code == 0, res.output
    assert "architectures" in res.output and "sample 2" in res.output
    for name in ("baseline", "cbam", "balanced"):
        assert name in res.output
    assert "no:" not in res.output  # every preset is a point


def test_concurrency_follows_the_resources():
    loaded = load_study(ROOT / "studies" / "quickstart.yaml", {"resources": {"cpus_per_trial": 1, "max_concurrent": None}})
    assert concurrency(loaded.study.resources, {"CPU": 8}) == 8
    resources = {"cpus_per_trial": 2, "gpus_per_trial": 0.25, "max_concurrent": None}
    loaded = load_study(ROOT / "studies" / "quickstart.yaml", {"resources": resources})
    assert concurrency(loaded.study.resources, {"CPU": 16, "GPU": 1}) == 4  # four quarter-GPU trials share one GPU
    assert concurrency(loaded.study.resources, {"CPU": 16, "GPU": 2}) == 8
    assert concurrency(loaded.study.resources, {"CPU": 6, "GPU": 2}) == 3  # CPUs bound it
    loaded = load_study(ROOT / "studies" / "quickstart.yaml", {"resources": {"cpus_per_trial": 1, "max_concurrent": 2}})
    assert concurrency(loaded.study.resources, {"CPU": 8}) == 2


# ------------------------------------------------------------------------------------ end to end
def test_class_weights_that_do_not_fit_the_dataset_are_refused_before_ray_starts(tmp_path):
    study = _study(tmp_path, seeds={}, train={"recipe": {"class_weights": [1.0, 1.0, 1.0]}})
    res = CliRunner().invoke(app, ["search", str(study), "--no-live"])  # in-process: the refusal comes before Ray
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())  # the message as one line, whatever the terminal width
    assert "train.recipe.class_weights has 3 entries but the dataset has 10 classes" in text and "Traceback" not in text
    assert not (tmp_path / "out" / "tune").exists()


@pytest.mark.slow
def test_resume_after_kill_9_loses_and_repeats_nothing(tmp_path):
    space = {**TINY_SPACE, "recipe": {"lr": 0.01, "optimizer": "sgd"}}  # no diverging trials here
    study = _study(tmp_path, space=space, seeds={}, budget={"trials": 3, "epochs": 2, "max_steps_per_epoch": 4},
                   resources={"cpus_per_trial": 1, "max_concurrent": 1}, report=False)
    out = tmp_path / "out"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    log = tmp_path / "first-run.log"  # what the killed search printed, shown if it never got going
    with log.open("wb") as sink:
        proc = subprocess.Popen([*NASATTN, "search", str(study), "--no-live"], stdout=sink,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    # (number, intermediate values) of RUNNING trials read from the live study, opened as a dashboard would
    # (from the first moment study.db exists: it may create Optuna's tables at the moment the search does)
    seen_running = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline and len(glob.glob(str(out / "trials" / "*" / "DONE"))) < 2:
            if proc.poll() is not None:
                break  # it ended (an error) before two trials finished
            time.sleep(0.5)
            if (out / "study.db").is_file():
                try:
                    live = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
                    seen_running += [(t.number, dict(t.intermediate_values)) for t in live.trials
                                     if t.state.name == "RUNNING" and t.intermediate_values]
                except Exception:  # noqa: BLE001 - the study may not exist yet
                    pass
        assert len(glob.glob(str(out / "trials" / "*" / "DONE"))) >= 2, (
            f"the search did not get going (exit code {proc.poll()}): {log.read_text(errors='replace')[-4000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone already when it ended on an error
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, as a crash would
        proc.wait()
    done_before = {p: os.stat(p).st_mtime_ns for p in glob.glob(str(out / "trials" / "*" / "DONE"))}
    res = _run(["search", str(study), "--resume", "--no-live"])
    assert res.returncode == 0, res.stdout + res.stderr
    rows = _rows(out)
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert len(rows) == len(complete) == 3, [(r["state"], r["tune_trial_id"]) for r in rows]
    assert len({r["tune_trial_id"] for r in complete}) == 3
    assert seen_running, "no RUNNING trial with an epoch value was visible in the study while the search ran"
    st = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.number for t in st.trials] == [0, 1, 2] and [t.state.name for t in st.trials] == ["COMPLETE"] * 3
    assert all(t.datetime_complete > t.datetime_start for t in st.trials)
    assert sorted(st.trials, key=lambda t: t.datetime_start) == st.trials  # numbers follow start order
    assert all(sorted(t.intermediate_values) == [1, 2] for t in st.trials) and st.metric_names == ["val_accuracy"]
    assert sorted(int(r["number"]) for r in rows) == [0, 1, 2]
    assert all(Path(r["run_dir"]) == out / "trials" / r["number"] and (Path(r["run_dir"]) / "DONE").is_file() for r in rows)
    assert not glob.glob(str(out / "tune" / "*" / "checkpoint_*"))  # finished trials keep no checkpoint
    for p, mtime in done_before.items():  # trials finished before the kill were not trained again
        assert os.stat(p).st_mtime_ns == mtime
    # one trial at a time: Tune reused trial 0's process for trial 1 (reuse_actors)
    pids = [json.loads((out / "trials" / n / "placement.json").read_text())["pid"] for n in ("0", "1")]
    assert pids[0] == pids[1], pids


@pytest.mark.slow
def test_search_on_an_existing_ray_cluster(tmp_path):
    """A head started with ``ray start --head --block`` in its own process group, stopped by that group
    (``ray stop`` would stop every Ray on the machine). Where the two-node harness runs, its search on a
    cluster started the same way (a head and a worker node) asserts all of this and more."""
    from twonode import namespaces_unavailable

    if namespaces_unavailable() is None:
        pytest.skip("covered by test_cluster_nodes.py::test_a_search_trains_every_trial_on_the_worker_node "
                    "(a search on a cluster started with ray start --head, with a worker node)")
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    port = _free_port()
    # no 30 s drain when the test stops it (as tests/twonode.py's nodes)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "ray start --head exited"
            time.sleep(0.5)
        study = _study(tmp_path, ray={"address": f"127.0.0.1:{port}"}, budget={"trials": 2, "epochs": 1, "max_steps_per_epoch": 2})
        res = _run(["search", str(study), "--no-live"])
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"127.0.0.1:{port}" in res.stdout
        assert [r["state"] for r in _rows(tmp_path / "out")] == ["COMPLETE", "COMPLETE"]
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # --block: the head stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        # the head's address file would send the next embedded ray.init() to this dead cluster
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server on loopback (Debian's package); yields its SQLAlchemy URL."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="nasattn-pg-"))  # not under pytest's 0700 folder: the server user must reach it
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    port = _free_port()
    data = root / "data"
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "nasattn"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "start",
                    "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1"], check=True, capture_output=True)
    try:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "nasattn", "-d", "postgres",
                        "-c", "CREATE DATABASE optuna"], check=True, capture_output=True)
        yield f"postgresql+psycopg2://nasattn@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_search_with_a_postgresql_storage_and_a_password_given_on_the_command_line_in_no_file(tmp_path, postgres):
    """A search whose study lives in PostgreSQL, its URL (with a password) given with --set: the trials are in the
    server's study, and the password is in no file of the run and in no output line."""
    password = "S3cretPw"
    url = postgres.replace("nasattn@", f"nasattn:{password}@")  # the test server trusts loopback: any password works
    study = _study(tmp_path, budget={"trials": 2, "epochs": 1, "max_steps_per_epoch": 2})
    res = _run(["search", str(study), "--set", f"storage={url}", "--no-live"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "password" not in res.stdout
    st = optuna.load_study(study_name="tiny", storage=postgres)
    assert [t.state.name for t in st.trials] == ["COMPLETE", "COMPLETE"]
    out = tmp_path / "out"
    assert not (out / "study.db").exists()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "tuner.pkl" for p in files) and (out / "report.html").is_file()
    leaked = [str(p) for p in files if password.encode() in p.read_bytes()]
    assert not leaked and password not in res.stdout + res.stderr
    assert "nasattn:***@" in json.loads((out / "run.json").read_text())["command"]


def test_preset_seed_points_carry_the_presets_recipe_not_sampled_values():
    space = load_space(EUROSAT_SPACE)
    points = preset_points(space, ["baseline", "cbam"])
    for name in ("baseline", "cbam"):  # defaults (label smoothing 0, no class weights) are fixed too
        assert points[name]["recipe.label_smoothing"] == 0.0 and points[name]["recipe.class_weights"] == "none"
        assert points[name]["recipe.lr"] == get_preset(name).recipe.lr


def test_trial_summary_names_blocks_widths_scale_attention_and_dropblock():
    from nasattn.spec import arch_summary

    arch = get_preset("balanced").arch.to_dict()
    text = arch_summary({"arch": arch, "width_mult": 0.125})
    assert "residual d3-3-3-2 w64-128-256-512 x0.125" in text
    assert "att=fusion:learnable_alpha" in text and "db=progressive" in text
    assert " x" not in arch_summary({"arch": arch, "width_mult": 1.0}).split("att=")[0]


@pytest.mark.slow
def test_search_end_to_end_with_a_failing_trial(tmp_path, module_ray):
    """In-process under the module's Ray, which starts here, after the CLI searches above (one Ray at a time)."""
    points = [
        {"stages.width.base": 8, "attention": "none", "recipe.lr": 0.01},
        {"stages.width.base": 8, "attention": "se", "recipe.lr": 1.0e8},  # diverges: NaN loss
        {"stages.width.base": 16, "attention": "se", "recipe.lr": 0.01},
    ]
    study = _study(tmp_path, seeds={"points": points}, budget={"trials": 3, "epochs": 2, "max_steps_per_epoch": 3})
    result = run_search(load_study(study), live=False)  # in-process, under the module's Ray
    assert not result.interrupted and result.report_error is None, result
    out = tmp_path / "out"
    rows = _rows(out)
    assert len(rows) == 3
    assert not [c for c in rows[0] if c.startswith("zc_")]  # train.zero_cost: false skips the training-free scores
    states = sorted(r["state"] for r in rows)
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]
    failed = next(r for r in rows if r["state"] == "FAIL")
    assert "non-finite" in failed["error"] and failed["param.recipe.lr"] == "100000000.0"
    ok = [r for r in rows if r["state"] == "COMPLETE"]
    for r in ok:  # each row carries its own run's numbers
        pred = pd.read_csv(Path(r["run_dir"]) / "predictions.csv")
        last_val = float(pd.read_csv(Path(r["run_dir"]) / "history.csv")["val_accuracy"].iloc[-1])
        assert float(r["objective.val_accuracy"]) == pytest.approx(last_val)  # the last epoch's, as ASHA sees it
        assert float(r["test_accuracy"]) == pytest.approx((pred["label"] == pred["pred"]).mean())
    best_metrics = json.loads((out / "best" / "metrics.json").read_text())
    top = next(r for r in ok if int(r["number"]) == best_metrics["trial_number"])
    assert float(top["objective.val_accuracy"]) == max(float(r["objective.val_accuracy"]) for r in ok)
    assert best_metrics["test_accuracy"] == pytest.approx(float(top["test_accuracy"]))
    best = yaml.safe_load((out / "best" / "arch.yaml").read_text())  # the best trial's sampled architecture
    assert [s["width"] for s in best["stages"]] == [int(top["param.stages.width.base"]) * g for g in (1, 2)]
    assert {(s.get("attention") or {}).get("type", "none") for s in best["stages"]} == {top["param.attention"]}
    st = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert len(st.trials) == 3 and st.best_value == max(float(r["objective.val_accuracy"]) for r in ok)
    html = (out / "report.html").read_text()
    assert result.report == out / "report.html" and html.count("plotly.js v") == 1  # plotly embedded once
    ids = set(re.findall(r'id="([^"]+)"', html))
    assert {"table-search-status", "table-search-best", "table-search-trials", "table-search-errors",
            "fig-search-history"} <= ids, ids
    errors = html[html.index('id="table-search-errors"'):].split("</table>")[0]
    assert "non-finite" in errors and f">{failed['number']}<" in errors  # the failed trial, with its error


@pytest.mark.slow
def test_checkpoints_of_short_epochs_stay_within_their_time_budget(tmp_path, module_ray):
    """Due checkpoints are skipped while they cost more than 5% of the trial; budget None writes every one."""
    from nasattn.tune import ray_session, run_grid

    arch = get_preset("baseline").arch.scaled(0.125).to_dict()
    base = {"arch": arch, "recipe": {"epochs": 6, "batch_size": 32, "eval_batch_size": 256}, "data": "eurosat-mini",
            "checkpoint_every": 1, "max_steps_per_epoch": 1}
    configs = [{**base, "checkpoint_budget": None}, base]
    with ray_session(None, num_cpus=1):  # the module's Ray, already started: reused
        grid = run_grid(configs, storage_path=tmp_path, cpus_per_trial=1, max_concurrent=1)
    written = []
    for result in sorted(grid, key=lambda r: r.config["index"]):
        df = result.metrics_dataframe
        written.append(int(df["checkpoint_dir_name"].notna().sum()) if "checkpoint_dir_name" in df else 0)
    assert written[0] == 5  # every epoch but the last, whose report is the final one
    assert 1 <= written[1] < 5, written


@pytest.mark.slow
def test_a_search_whose_trials_all_fail_stops_early_with_the_error(tmp_path, module_ray):
    # device cuda on trials given no GPU: every trial raises before training (no silent CPU fallback)
    study = _study(tmp_path, seeds={}, resources={"cpus_per_trial": 1, "max_concurrent": 1},
                   budget={"trials": 8, "epochs": 1, "max_steps_per_epoch": 3, "abort_after_failures": 2},
                   train={"device": "cuda", "recipe": {"eval_batch_size": 256}, "zero_cost": False}, report=False)
    res = CliRunner().invoke(app, ["search", str(study), "--no-live"])  # in-process, under the module's Ray
    assert res.exit_code == 1, res.output
    assert "every trial failed" in res.output and "TrialDeviceError" in res.output
    assert 2 <= len(_rows(tmp_path / "out")) < 8
