"""`nasattn ablate --dry-run` shows each variant's change as written (no text eaten as rich markup)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from nasattn.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_prints_the_change_of_every_variant_verbatim():
    res = CliRunner().invoke(app, ["ablate", str(ROOT / "studies" / "ablation-quick.yaml"), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "[fusion])" in res.output  # alpha_no_decay's description: recipe.no_weight_decay: [fusion]
    assert 'alpha_no_decay differs from base in: recipe.no_weight_decay: [] -> ["fusion"]' in res.output
