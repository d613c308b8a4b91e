"""The run-folder schema owns every file name, status word and exit code: no stray literal in nasattn/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from nasattn import schema
from nasattn.schema import ExitCode, TrialStatus

PACKAGE = Path(__file__).resolve().parents[1] / "nasattn"
# doctor/ records its own check results (not run folders), and is another branch's package
EXEMPT = {PACKAGE / "schema.py"} | set((PACKAGE / "doctor").rglob("*.py"))
FILE_NAMES = sorted({v for k, v in vars(schema).items() if k.isupper() and isinstance(v, str) and "." in v})
WORDS = sorted({*(s.value for s in TrialStatus), schema.EXPERIMENT, schema.ERROR_FILE})


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def stray_literals(path: Path) -> list[str]:
    """``file:line: 'literal'`` for every string constant (docstrings aside) that spells a schema name."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    names = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, FILE_NAMES)) + r")(?!\w)")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if node.value in WORDS or names.search(node.value):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_spells_a_run_file_name_or_a_status_word_itself():
    found = [hit for p in sorted(PACKAGE.rglob("*.py")) if p not in EXEMPT for hit in stray_literals(p)]
    assert not found, "use nasattn.schema's names instead of these literals:\n" + "\n".join(found)


def test_the_check_finds_a_literal():
    bad = PACKAGE / "_schema_probe.py"
    try:
        bad.write_text('"""metrics.json in a docstring is fine."""\nX = ("metrics.json", "COMPLETE", f"{1}/DONE")\n'
                       'Y = "tune"\n')
        hits = stray_literals(bad)
    finally:
        bad.unlink()
    assert sorted(h.split(": ", 1)[1] for h in hits) == ["'COMPLETE'", "'metrics.json'", "'tune'"]


@pytest.mark.parametrize("status", list(TrialStatus))
def test_a_status_is_written_as_its_word(status, tmp_path):
    import pandas as pd

    pd.DataFrame([{"status": status}]).to_csv(tmp_path / "s.csv", index=False)
    assert (tmp_path / "s.csv").read_text().splitlines()[1] == status.name == f"{status}"


def test_exit_codes_are_the_documented_numbers():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 130, 143]
