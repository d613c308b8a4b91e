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


def test_the_quick_study_comment_counts_the_variants_the_cli_runs():
    import re

    text = (ROOT / "studies" / "ablation-quick.yaml").read_text()
    said = int(re.search(r"(\d+) variants", text).group(1))
    res = CliRunner().invoke(app, ["ablate", str(ROOT / "studies" / "ablation-quick.yaml"), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert f"| {said} variants x 2 seeds" in " ".join(res.output.split())
    measured = re.search(r"\((\d+) s measured", text).group(1)  # the study's comment and the README quote one time
    assert f"`nasattn ablate studies/ablation-quick.yaml` {measured} s" in (ROOT / "README.md").read_text()


def test_dry_run_writes_the_architecture_as_search_does():
    from nasattn.presets import get_preset
    from nasattn.spec import arch_summary

    res = CliRunner().invoke(app, ["ablate", str(ROOT / "studies" / "ablation-quick.yaml"), "--dry-run"])
    line = arch_summary({"arch": get_preset("balanced").arch.to_dict(), "width_mult": 0.25}, with_name=False)
    import re

    unboxed = re.sub(r"[\s│┃]", "", res.output)  # rich folds the architecture column over several lines
    assert "att=fusion:learnable_alpha" in line and re.sub(r"\s", "", line) in unboxed
