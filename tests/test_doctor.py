"""``nasattn doctor``: the CPU dry run works end to end, and missing packages are named, not crashed on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasattn.doctor.record import RECORDS, Recorder, read_records
from nasattn.doctor.runner import SECTIONS, pick_device, summary_rows

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


@pytest.mark.slow
def test_dry_run_of_every_section_on_the_cpu(tmp_path):
    out = tmp_path / "doc"
    res = _doctor(["--dry-run", "--out", str(out), "--time-scale", "3"], tmp_path)
    rows = read_records(out)
    sections = {r["section"]: r for r in rows if r["check"] == "section"}
    assert list(sections) == [s for s in SECTIONS if s != "data"], res.stdout
    assert all(s["status"] == "ok" for s in sections.values()), [(k, v) for k, v in sections.items()] + [res.stdout]
    assert res.returncode == 0, res.stdout + res.stderr
    checks = {(r["section"], r["check"]): r for r in rows}
    for preset in ("baseline", "cbam", "balanced"):
        for amp in ("bf16", "fp16", "off"):
            row = checks[("correctness", f"{preset}/{amp}")]
            # a few steps from initialisation on 10 balanced classes: near the chance loss ln(10) = 2.30, finite
            assert row["status"] == "ok" and 2.30 / 3 < row["train_loss"] < 2.30 * 3, row
        speed = checks[("speed", preset)]
        assert speed["ratio"] == pytest.approx(speed["engine_images_per_second"] / speed["naive_images_per_second"])
    assert checks[("correctness", "resume_equality")]["max_abs_weight_difference"] == 0
    assert checks[("correctness", "dropblock_fraction")]["status"] == "ok"
    assert checks[("syncs", "syncs_per_step")]["status"] == "skipped"  # needs CUDA
    assert [checks[("packing", f"{n}_at_once")]["processes"] for n in (1, 2)] == [1, 2]
    two = checks[("packing", "2_at_once")]  # through Ray (installed here): two tasks sharing one (logical) GPU
    assert two["via"] == "ray tasks of 0.5 GPU" and two["gpu_ids"] == [["0"], ["0"]], two
    explain = next(r for (s, c), r in checks.items() if s == "compile" and c.endswith("/explain"))
    assert explain["train_graph_breaks"] == 0 and explain["eval_graph_breaks"] == 0
    versions = checks[("env", "versions")]
    assert versions["torch"] == torch.__version__ and versions["dry_run"] is True
    assert "doctor.jsonl" in res.stdout and "correctness" in res.stdout


@pytest.mark.slow
def test_without_ray_optuna_plotly_or_pydantic_the_doctor_says_what_it_skipped(tmp_path):
    out = tmp_path / "doc"
    res = _doctor(["--dry-run", "--out", str(out), "--section", "env", "--section", "correctness"], tmp_path,
                  shadow=["ray", "optuna", "plotly", "sqlalchemy", "pydantic"], cli=[sys.executable, "-m", "nasattn.doctor"])
    rows = read_records(out)
    checks = {(r["section"], r["check"]): r for r in rows}
    packages = checks[("env", "packages")]
    assert set(packages["missing"]) >= {"ray", "optuna", "plotly", "sqlalchemy", "pydantic"}, packages
    assert any("pip install pydantic" in n for n in packages["notes"])
    skipped = checks[("correctness", "section")]
    assert skipped["status"] == "skipped" and "pydantic is required" in skipped["reason"], skipped
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
