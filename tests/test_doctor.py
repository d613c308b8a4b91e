"""``nasattn doctor``: the CPU dry run works end to end, and missing packages are named, not crashed on."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from packaging.utils import canonicalize_name as canonical

from nasattn.doctor.bundle import (
    DOCTOR_ROOTS,
    BundleError,
    build_bundle,
    download_wheels,
    parse_size,
    requirement_closure,
    split_file,
)
from nasattn.doctor.record import RECORDS, Recorder, read_records
from nasattn.doctor.runner import NEEDS_DATA, SECTIONS, pick_device, summary_rows

ROOT = Path(__file__).resolve().parents[1]
NASATTN = [sys.executable, "-m", "nasattn.cli.main"]


def _doctor(args: list[str], tmp_path: Path, shadow: list[str] = (), timeout: float = 900,
            cli: list[str] = (*NASATTN, "doctor")) -> subprocess.CompletedProcess:
    """Run ``nasattn doctor``; ``shadow`` packages are made unimportable (as on a machine without them)."""
    paths = [str(ROOT)]
    if shadow:
        fake = tmp_path / "shadow"
        for name in shadow:
            (fake / name).mkdir(parents=True, exist_ok=True)
            (fake / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed (test shadow)')\n")
        paths.insert(0, str(fake))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*cli, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def test_records_are_json_lines_and_the_table_shows_the_main_values(tmp_path):
    rec = Recorder(tmp_path, "speed")
    rec.add("baseline", "ok", engine_images_per_second=123.456, ratio=float("nan"), peak_memory_mib=None)
    rec.add("section", "ok", seconds=1.5)
    rows = read_records(tmp_path)
    assert [r["check"] for r in rows] == ["baseline", "section"]
    assert rows[0]["ratio"] == "nan"  # strict JSON: no NaN literal
    json.loads((tmp_path / RECORDS).read_text().splitlines()[0])
    table = summary_rows(rows)
    assert table[0][:3] == ("speed", "baseline", "ok") and "engine_images_per_second=123.5" in table[0][3]
    assert "peak_memory_mib" not in table[0][3] and table[1][3].startswith("1.5 s")


def test_without_cuda_the_doctor_is_a_dry_run_and_gpu_is_refused():
    if torch.cuda.is_available():
        assert pick_device(False, None) == ("cuda", False)
        assert pick_device(False, True) == ("cpu", True)
    else:
        assert pick_device(False, None) == ("cpu", True)
        with pytest.raises(ValueError, match="--gpu: CUDA is not available"):
            pick_device(True, None)


def test_gpu_without_cuda_and_unknown_sections_exit_2(tmp_path):
    if not torch.cuda.is_available():
        res = _doctor(["--gpu", "--out", str(tmp_path / "d")], tmp_path)
        assert res.returncode == 2 and "CUDA is not available" in res.stderr and "Traceback" not in res.stderr
    res = _doctor(["--dry-run", "--section", "nope", "--out", str(tmp_path / "d")], tmp_path)
    assert res.returncode == 2 and "unknown section(s) nope" in res.stderr, res.stderr


def _check_correctness(checks: dict[tuple[str, str], dict]) -> None:
    """The correctness section's checks of a CPU dry run: losses near chance for every preset and precision,
    an exact resume, DropBlock's dropped fraction."""
    assert checks[("correctness", "section")]["status"] == "ok", checks[("correctness", "section")]
    for preset in ("baseline", "cbam", "balanced"):
        for amp in ("bf16", "fp16", "off"):
            row = checks[("correctness", f"{preset}/{amp}")]
            # a few steps from initialisation on 10 balanced classes: near the chance loss ln(10) = 2.30, finite
            assert row["status"] == "ok" and 2.30 / 3 < row["train_loss"] < 2.30 * 3, row
    assert checks[("correctness", "resume_equality")]["max_abs_weight_difference"] == 0
    assert checks[("correctness", "dropblock_fraction")]["status"] == "ok"


@pytest.mark.slow
@pytest.mark.timeout(3600)  # its bundle_dry_run fixture may build the bundle (pip downloads)
def test_dry_run_of_every_section_on_the_cpu(tmp_path, bundle_dry_run):
    """Every section but env and correctness here; those two are checked on the bundle's dry run (the same
    sections, run once per session), or here when no package index could build the bundle."""
    out = tmp_path / "doc"
    shared = bundle_dry_run.skip is None
    names = [s for s in SECTIONS if s not in NEEDS_DATA and not (shared and s in ("env", "correctness"))]
    res = _doctor(["--dry-run", "--out", str(out), "--time-scale", "3", *[a for n in names for a in ("--section", n)]],
                  tmp_path)
    rows = read_records(out)
    sections = {r["section"]: r for r in rows if r["check"] == "section"}
    assert list(sections) == names, res.stdout
    assert all(s["status"] == "ok" for s in sections.values()), [(k, v) for k, v in sections.items()] + [res.stdout]
    assert res.returncode == 0, res.stdout + res.stderr
    checks = {(r["section"], r["check"]): r for r in rows}
    _check_correctness(bundle_dry_run.checks if shared else checks)
    assert (bundle_dry_run.checks if shared else checks)[("env", "section")]["status"] == "ok"
    assert "correctness" in (bundle_dry_run.stdout if shared else res.stdout)
    for preset in ("baseline", "cbam", "balanced"):
        speed = checks[("speed", preset)]
        assert speed["ratio"] == pytest.approx(speed["engine_images_per_second"] / speed["naive_images_per_second"])
    assert checks[("syncs", "syncs_per_step")]["status"] == "skipped"  # needs CUDA
    assert [checks[("packing", f"{n}_at_once")]["processes"] for n in (1, 2)] == [1, 2]
    two = checks[("packing", "2_at_once")]  # through Ray (installed here): two tasks sharing one (logical) GPU
    assert two["via"] == "ray tasks of 0.5 GPU" and two["gpu_ids"] == [["0"], ["0"]], two
    assert two["niceness"] == [os.nice(0)] * 2, two  # Ray's workers at this process's priority, not Ray's nice 15
    explain = next(r for (s, c), r in checks.items() if s == "compile" and c.endswith("/explain"))
    assert explain["train_graph_breaks"] == 0 and explain["eval_graph_breaks"] == 0
    versions = (bundle_dry_run.checks if shared else checks)[("env", "versions")]
    assert versions["status"] == "ok" and versions["torch"] == torch.__version__ and versions["dry_run"] is True
    assert "doctor.jsonl" in res.stdout and "speed" in res.stdout


@pytest.fixture(scope="module")
def shadowed_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One ``nasattn doctor`` through the console script's entry with ray, optuna, plotly, sqlalchemy, pydantic and
    typer unimportable (as on a bare GPU box): a dry run of env, correctness and compile, read by the two tests below."""
    tmp_path = tmp_path_factory.mktemp("shadowed")
    out = tmp_path / "doc"
    script = "import sys; from nasattn.cli.entry import main; sys.argv[0] = 'nasattn'; main()"
    sections = [a for n in ("env", "correctness", "compile") for a in ("--section", n)]
    res = _doctor(["doctor", "--dry-run", "--out", str(out), *sections, "--time-scale", "3"], tmp_path,
                  shadow=["ray", "optuna", "plotly", "sqlalchemy", "pydantic", "typer"], cli=[sys.executable, "-c", script])
    return SimpleNamespace(res=res, out=out, checks={(r["section"], r["check"]): r for r in read_records(out)})


@pytest.mark.slow
def test_without_ray_optuna_plotly_or_pydantic_the_doctor_says_what_it_skipped(shadowed_run):
    res, checks = shadowed_run.res, shadowed_run.checks
    packages = checks[("env", "packages")]
    assert set(packages["missing"]) >= {"ray", "optuna", "plotly", "sqlalchemy", "pydantic"}, packages
    assert any("pip install pydantic" in n for n in packages["notes"])
    skipped = checks[("correctness", "section")]
    assert skipped["status"] == "skipped" and "pydantic is required" in skipped["reason"], skipped
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr


@pytest.mark.slow
def test_nasattn_doctor_starts_without_typer_or_pydantic(shadowed_run):
    """The console script's doctor path imports neither: with both unimportable it runs, skipping with reasons."""
    res, out, checks = shadowed_run.res, shadowed_run.out, shadowed_run.checks
    assert checks[("env", "versions")]["status"] == "ok", res.stdout + res.stderr
    assert {"pydantic", "typer"} <= set(checks[("env", "packages")]["missing"])
    assert checks[("compile", "section")]["status"] == "skipped" and "pip install pydantic" in checks[("compile", "section")]["reason"]
    assert "Traceback" not in res.stdout + res.stderr and sorted(p.name for p in out.iterdir()) == ["doctor.jsonl", "summary.txt"]
    assert "compile" in (out / "summary.txt").read_text()


def host_torch(folder: Path) -> Path:
    """A folder of links to this environment's torch and what torch requires, and pip, nothing else (a GPU box's
    install; linking pip spares the venv its ensurepip run)."""
    folder.mkdir()
    for dist in requirement_closure(["torch", "pip"]).values():
        site = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if (site / top).exists() and not (folder / top).exists():
                (folder / top).symlink_to(site / top)
    return folder


@pytest.fixture(scope="module")
def bundle_dry_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Build the bundle for this Python, install it with --no-index into a fresh interpreter that has only torch,
    run its dry run of env and correctness: once per session, read by the bundle test and (correctness) by the
    CPU dry-run test. ``skip`` says why not when no package index is reachable to download wheels."""
    tmp_path = tmp_path_factory.mktemp("bundle")
    bundle = tmp_path / "bundle"
    zip_path = tmp_path / "data.zip"
    zip_path.write_bytes(os.urandom(3000))
    build = subprocess.run([sys.executable, "-m", "nasattn.doctor", "--bundle", str(bundle), "--data", str(zip_path),
                            "--part-size", "1K"], capture_output=True, text=True, cwd=ROOT, timeout=1200, check=False,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    if build.returncode != 0 and re.search(r"No matching distribution|Could not find a version|NewConnectionError|"
                                           r"Network is unreachable|Temporary failure in name resolution", build.stderr):
        return SimpleNamespace(skip=f"no package index reachable to download wheels: {build.stderr.strip().splitlines()[-1]}")
    assert build.returncode == 0, build.stdout + build.stderr
    data_parts = sorted(p.name for p in (bundle / "data").iterdir())  # as built, before run.sh joins them
    # A fresh interpreter: a venv without site packages that sees only torch and pip (as a GPU box's python).
    bare = tmp_path / "bare"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=300)
    torch_only = host_torch(tmp_path / "host")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHON=str(bare / "bin" / "python"), PYTHONPATH=str(torch_only), NASATTN_INSTALL="target",
               PIP_NO_INDEX="1", OMP_NUM_THREADS="1", COLUMNS="200")
    out = tmp_path / "doctor-out"
    res = subprocess.run(["bash", str(bundle / "run.sh"), "--dry-run", "--out", str(out), "--section", "env",
                          "--section", "correctness", "--time-scale", "3"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1500, check=False)
    rows = read_records(out) if (out / RECORDS).is_file() else []
    return SimpleNamespace(skip=None, bundle=bundle, zip_path=zip_path, data_parts=data_parts, out=out, stdout=res.stdout,
                           stderr=res.stderr, rows=rows, checks={(r["section"], r["check"]): r for r in rows})


@pytest.mark.slow
@pytest.mark.timeout(3600)  # builds the bundle (pip downloads), installs ~20 wheels offline, runs two sections
def test_offline_bundle_installs_without_an_index_and_runs_the_dry_run(bundle_dry_run):
    """The bundle (see ``bundle_dry_run``) carries what the doctor needs but torch, and its dry run works."""
    if bundle_dry_run.skip:
        pytest.skip(bundle_dry_run.skip)
    bundle, out, checks = bundle_dry_run.bundle, bundle_dry_run.out, bundle_dry_run.checks
    stdout, stderr = bundle_dry_run.stdout, bundle_dry_run.stderr
    wheels = {p.name.split("-")[0].lower() for p in (bundle / "wheels").iterdir()}
    assert {"nasattn", "pydantic", "pydantic_core", "pyyaml", "rich", "numpy"} <= wheels and "torch" not in wheels
    assert bundle_dry_run.data_parts == ["SHA256SUMS", *[f"data.zip.part{i:03d}" for i in range(3)]]
    assert "sha256 checked" in stdout and (bundle / "data" / "data.zip").read_bytes() == bundle_dry_run.zip_path.read_bytes()
    assert f"JSON records: {out}/doctor.jsonl" in stdout, stdout + stderr
    assert {s for s, c in checks if c == "section"} == {"env", "correctness"}, stdout + stderr
    assert checks[("env", "versions")]["nasattn_path"].startswith(str(bundle / "site")), checks[("env", "versions")]
    packages = checks[("env", "packages")]
    assert packages["available"]["pydantic"] and not packages["available"]["ray"], packages
    assert sorted(p.name for p in out.iterdir()) == ["doctor.jsonl", "summary.txt"]
    done = [r for r in bundle_dry_run.rows if r["section"] == "correctness" and r["check"] != "section"]
    assert any(r["status"] == "ok" for r in done) and not [r for r in done if r["status"] in ("error", "fail")], done


def test_data_parts_are_at_most_the_part_size_and_their_sums_check(tmp_path):
    src = tmp_path / "EuroSAT_RGB.zip"
    src.write_bytes(os.urandom(2 * 1024 + 5))
    parts = split_file(src, tmp_path / "data", parse_size("1K"))
    assert parts == [f"EuroSAT_RGB.zip.part{i:03d}" for i in range(3)]
    assert [(tmp_path / "data" / p).stat().st_size for p in parts] == [1024, 1024, 5]
    assert b"".join((tmp_path / "data" / p).read_bytes() for p in parts) == src.read_bytes()
    sums = dict(line.split("  ")[::-1] for line in (tmp_path / "data" / "SHA256SUMS").read_text().splitlines())
    for name in [*parts, src.name]:
        path = tmp_path / "data" / name if name != src.name else src
        assert sums[name] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert parse_size("50M") == 50 * 2**20 and parse_size("1.5G") == int(1.5 * 2**30) and parse_size("800") == 800
    for bad in ("", "0", "-1M", "50X"):
        with pytest.raises(BundleError, match="--part-size"):
            parse_size(bad)


def test_the_bundle_never_carries_torch_and_refuses_a_non_empty_folder(tmp_path):
    with pytest.raises(BundleError, match="never carries torch"):
        download_wheels(tmp_path, "3.12", ["manylinux2014_x86_64"], ["pydantic", "torch"])
    (tmp_path / "x").write_text("")
    with pytest.raises(BundleError, match="not empty"):
        build_bundle(tmp_path, python="3.12", platforms=["manylinux2014_x86_64"])
    with pytest.raises(BundleError, match="major.minor"):
        build_bundle(tmp_path / "new", python="3", platforms=["manylinux2014_x86_64"])
    assert {"pydantic", "pydantic-core", "pyyaml", "numpy"} <= {canonical(n) for n in requirement_closure(DOCTOR_ROOTS)}
