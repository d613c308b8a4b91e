"""`nasattn search --dry-run`: the resolved study, the space's size, the seed points and the plan, without Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
from typer.testing import CliRunner
from nasattn.cli.main import app
res = CliRunner().invoke(app, ["search", "quickstart", "--dry-run", "--out", sys.argv[1], "--set", "budget.trials=7"])
print(json.dumps({"code": res.exit_code, "output": res.output, "ray": "ray" in sys.modules}))
"""


def test_dry_run_prints_the_plan_without_importing_ray_or_writing(tmp_path):
    out = tmp_path / "search"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    res = subprocess.run([sys.executable, "-c", PROBE, str(out)], capture_output=True, text=True, env=env, timeout=300)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["code"] == 0, got["output"] + res.stderr
    assert got["ray"] is False  # nothing imported Ray, so nothing started it
    text = got["output"]
    assert "budget: {trials: 7," in text  # the resolved study, --set applied
    assert "early_stopping: {type: asha" in text
    assert "space eurosat: " in text and "architectures (before constraints)" in text
    for i, name in enumerate(("baseline", "cbam", "balanced")):  # the seed points, in the study's order
        assert f"seed #{i} {name}: " in text
    assert "att=fusion:learnable_alpha" in text
    cpus = os.cpu_count() or 1
    conc = min(cpus, 2)  # quickstart: 1 CPU per trial, max_concurrent 2
    assert f"plan: 7 trials (3 seeded) x up to 3 epochs | embedded Ray on {cpus} CPUs, 0 GPUs: up to {conc} " in text
    assert "stops after 540 s" in text
    assert not out.exists()
