"""``nasattn train`` whose output is not a terminal prints one plain line per epoch (no progress bar)."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from nasattn.cli.main import app


def test_train_to_a_pipe_prints_one_line_per_epoch(tmp_path):
    r = CliRunner().invoke(app, ["train", "--preset", "baseline", "--data", "eurosat-mini", "--subset", "0.3",
                                 "--epochs", "2", "--width-mult", "0.125", "--threads", "1", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if re.match(r"epoch \d+: loss ", line)]
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2"]
    assert "━" not in r.output  # no rich bar in a log
