"""A search report's footer names the command that started the search, overrides included."""

from __future__ import annotations

import json
import sys

from nasattn.report.search import started_command


def test_the_footer_command_is_the_one_recorded_at_the_start(tmp_path, monkeypatch):
    from pathlib import Path

    from nasattn.search.run import start_record
    from nasattn.search.study import load_study

    root = Path(__file__).resolve().parents[1]
    monkeypatch.setattr(sys, "argv", ["nasattn", "search", "quickstart", "--set", "budget.trials=2"])
    loaded = load_study(root / "studies" / "quickstart.yaml", {"budget": {"trials": 2}})
    start_record(tmp_path, loaded)
    assert json.loads((tmp_path / "run.json").read_text())["command"] == "nasattn search quickstart --set budget.trials=2"
    assert started_command(tmp_path) == "nasattn search quickstart --set budget.trials=2"
    assert started_command(tmp_path / "elsewhere") is None
