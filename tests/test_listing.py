"""``nasattn presets`` and ``nasattn blocks`` are listings: fast, readable, no training stack imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json, sys
from typer.testing import CliRunner
from nasattn.cli.main import app
res = CliRunner().invoke(app, sys.argv[1:], catch_exceptions=False, terminal_width=80)
heavy = sorted(m for m in ("torch", "torchvision", "torch._dynamo", "nasattn.engine", "ray", "optuna")
               if m in sys.modules)
print(json.dumps({"code": res.exit_code, "out": res.stdout, "heavy": heavy}))
"""


def _run(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, env=env, check=True,
                         cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_presets_listing_imports_no_torch_and_keeps_its_headers_at_80_columns():
    res = _run("presets")
    assert res["code"] == 0 and res["heavy"] == []
    header = next(line for line in res["out"].splitlines() if "preset" in line and "params" in line)
    for col in ("preset", "layers", "convs", "params", "GFLOP", "paper acc."):
        assert col in header
    for text in ("13.12M", "6.27", "97.23%", "nasattn's choice", "optimizer: adam", "early_stopping",
                 "differs from author", "dropblock.law = paper"):
        assert text in res["out"]


def test_blocks_listing_imports_neither_torchvision_nor_dynamo_and_shows_no_markup():
    res = _run("blocks")
    assert res["code"] == 0
    assert "torchvision" not in res["heavy"] and "torch._dynamo" not in res["heavy"] and "nasattn.engine" not in res["heavy"]
    assert "``" not in res["out"]
    assert "dropblock_law" in res["out"] and "paper" in res["out"]


def test_the_readme_names_every_block_kind_of_the_registry():
    import re
    from pathlib import Path

    from nasattn.registry import KINDS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    line = re.search(r"Kinds: ((?:`\w+`,?\s*)+)\.", readme)
    assert line is not None, "README: the 'Kinds: ...' sentence of the registry section is missing"
    assert re.findall(r"`(\w+)`", line.group(1)) == list(KINDS)
