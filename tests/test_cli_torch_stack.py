"""A torchvision built for another torch is caught before training: exit 2, one line, both from one index."""

from __future__ import annotations

import importlib.abc
import sys

import pytest
import torchvision  # noqa: F401 - the package imports; only its compiled operators are missing below
from typer.testing import CliRunner

from nasattn.cli.main import app


class BrokenOps(importlib.abc.MetaPathFinder):
    """Importing torchvision.ops fails as it does when torch and torchvision come from different builds."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision.ops":
            raise RuntimeError("operator torchvision::nms does not exist")
        return None


@pytest.fixture
def mismatched(monkeypatch):
    for name in [m for m in sys.modules if m == "torchvision.ops" or m.startswith("torchvision.ops.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [BrokenOps(), *sys.meta_path])


@pytest.mark.parametrize("command", [["train", "--preset", "baseline", "--data", "eurosat-mini"],
                                     ["search", "quickstart"], ["ablate", "ablation-quick"]])
def test_a_torch_torchvision_mismatch_exits_2_with_one_line(mismatched, command, tmp_path):
    res = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    error = [ln for ln in lines if ln.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in res.output
    assert "operator torchvision::nms does not exist" in error[0] and "install both from one index" in error[0]
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_a_matching_stack_passes_the_check():
    from nasattn.cli.stack import check_torch_stack

    check_torch_stack()  # torch and torchvision of this venv load together: no exit
