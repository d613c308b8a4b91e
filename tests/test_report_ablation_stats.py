"""The ablation report's statistics, alpha control curve and paper numbers, on hand-made run folders."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nasattn.report import render_report
from nasattn.stats import adjust_pvalues

N_TEST = 200
BLOCK = "stages.0.0.attention"


def _run(folder: Path, correct: np.ndarray, alpha: list[float] | None, decay: list[float] | None) -> Path:
    folder.mkdir(parents=True)
    acc = float(correct.mean())
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": acc, "kappa": acc - 0.05, "n_test": N_TEST}))
    labels = np.arange(N_TEST) % 10
    pred = np.where(correct, labels, (labels + 1) % 10)
    pd.DataFrame({"index": np.arange(N_TEST), "label": labels, "pred": pred, "confidence": 0.9,
                  "correct": correct}).to_csv(folder / "predictions.csv", index=False)
    hist = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.8, 0.7], "val_accuracy": [0.5, 0.6, 0.7]}
    if alpha:
        hist[f"alpha/{BLOCK}"] = alpha
    if decay:
        hist[f"alpha_decay_only/{BLOCK}"] = decay
    pd.DataFrame(hist).to_csv(folder / "history.csv", index=False)
    return folder


def _ablation(tmp_path: Path, wrong: dict[str, dict[int, int]], failed: set = frozenset(), correction: str = "holm") -> Path:
    rows = []
    for v, by_seed in wrong.items():
        for seed, k in by_seed.items():
            correct = np.ones(N_TEST, dtype=bool)
            correct[:k] = False
            d = tmp_path / "runs" / v / f"seed{seed}"
            status = "ERROR" if (v, seed) in failed else "COMPLETE"
            if status == "COMPLETE":
                _run(d, correct, [0.62, 0.6, 0.59] if v == "base" else None, [0.62, 0.61, 0.6] if v == "base" else None)
            rows.append({"variant": v, "seed": seed, "split_seed": 42, "status": status,
                         "run_dir": str(d) if status == "COMPLETE" else None,
                         "test_accuracy": None if status == "ERROR" else 1 - k / N_TEST,
                         "kappa": None if status == "ERROR" else 1 - k / N_TEST - 0.05 + 0.001 * seed * (v == "worse"),
                         "n_test": N_TEST, f"alpha/{BLOCK}": 0.59 if v == "base" else None,
                         f"alpha_decay_only/{BLOCK}": 0.6 if v == "base" else None})
    pd.DataFrame(rows).to_csv(tmp_path / "ablation.csv", index=False)
    (tmp_path / "ablation.json").write_text(json.dumps({
        "base": "base", "base_source": {"preset": "balanced"}, "seeds": [0, 1, 2], "correction": correction,
        "differences": {"worse": ['recipe.class_weights: "balanced" -> "none"']},
        "skipped": {"paper_balanced": "the base is the balanced preset"}}))
    return tmp_path


def _table(html: str, table_id: str) -> str:
    return html[html.index(f'id="{table_id}"'):].split("</table>")[0]


def test_report_shows_adjusted_p_paired_ci_verdict_and_per_run_mcnemar(tmp_path: Path):
    wrong = {"base": {0: 10, 1: 12, 2: 11}, "plus4": {0: 6, 1: 8, 2: 7}, "worse": {0: 20, 1: 25, 2: 21},
             "broken": {0: 30, 1: 40, 2: 33}}
    folder = _ablation(tmp_path, wrong, failed={("broken", 2)})
    (folder / "runs" / "broken" / "seed1" / "predictions.csv").write_bytes(b"\x00\xff garbage")  # unreadable
    html = render_report(folder).read_text()
    table = _table(html, "table-ablation-variants")
    for header in ("Δ test acc. vs base [95% CI]", "Δ two-level bootstrap 95% CI", "d_z", "p (paired t)",
                   "p adj. (holm)", "p (sign-flip, exact)", "runs better", "P(better) [95% CI]", "detectable (80% power)",
                   "verdict", "kappa p adj. (own family)"):
        assert header in table, header
    assert "McNemar" not in table  # per run only, in the notes; never pooled, never a column beside the verdict
    # worse: paired t over 3 seeds, and its Holm-adjusted p over the accuracy family (worse, plus4 has none)
    d = np.array([10 - 20, 12 - 25, 11 - 21]) / N_TEST
    p_worse = stats.ttest_1samp(d, 0).pvalue
    assert f"{p_worse:.3g}" in table
    worse = next(r for r in table.split("<tr") if ">worse<" in r)
    # the only accuracy p of the family (plus4 has zero variance, broken 2 runs): adjusted = raw
    assert ">0 of 3<" in worse and f"worse by 5.50 points (95% CI -7.65 points to -3.35 points, adjusted p = {p_worse:.2g}" in worse
    # plus4 (+4 images on every seed): no t-test, said why
    text = re.sub(r"<[^>]+>", " ", html)
    assert "plus4 (test accuracy): every pair differs by the same amount" in text and "+4 test images" in text
    # broken: a failed seed; paired on the two that both have: not testable
    assert "broken (test accuracy): paired on the 2 run(s) both have (the variant lacks seed 2)" in text
    assert "2/3 †" in table
    assert "broken: not testable with 2 runs" in text
    # McNemar per run, labelled as a statement about two trained models: worse's seed 0 has b = 10 (20 - 10 wrong)
    assert "worse: these two trained models disagree on these images: seed0: b=10 c=0" in text
    assert "training seeds on one fixed split" in text and "for the primary metric (test accuracy) only" in text
    changes = _table(html, "table-ablation-changes")
    assert "worse</td><td>recipe.class_weights: &quot;balanced&quot; -&gt; &quot;none&quot;" in changes
    assert "skipped: the base is the balanced preset" in changes


def test_report_correction_from_the_ablation_file(tmp_path: Path):
    wrong = {"base": {0: 10, 1: 12, 2: 11}, "worse": {0: 20, 1: 25, 2: 21}, "other": {0: 12, 1: 11, 2: 15}}
    html = render_report(_ablation(tmp_path, wrong, correction="bh")).read_text()
    table = _table(html, "table-ablation-variants")
    assert "p adj. (bh)" in table and "Benjamini-Hochberg" in html
    acc = {v: np.array([wrong["base"][s] - wrong[v][s] for s in range(3)]) / N_TEST for v in ("worse", "other")}
    family = [acc["worse"], acc["other"]]  # the accuracy family: the variants, kappa left out
    raw = [stats.ttest_1samp(d, 0).pvalue for d in family]
    adjusted = adjust_pvalues(raw, "bh")
    rows = table.split("<tr")
    worse = next(r for r in rows if ">worse<" in r)
    assert f"{raw[0]:.3g}" in worse and f"{adjusted[0]:.3g}" in worse
    assert adjusted[0] != pytest.approx(raw[0])


def test_alpha_control_curve_beside_the_learned_alpha(tmp_path: Path):
    folder = _ablation(tmp_path, {"base": {0: 10, 1: 12, 2: 11}, "worse": {0: 20, 1: 25, 2: 21}})
    html = render_report(folder).read_text()
    fig = html[html.index('id="fig-ablation-alpha-0"'):][:20000]
    assert "stage 1 (1 block), learned" in fig and "stage 1, weight decay alone" in fig  # BLOCK's stage, one line each
    assert "learned vs weight decay alone" in fig
    paper = _table(html, "table-ablation-paper")
    assert "mean alpha from weight decay alone" in paper


def test_paper_numbers_come_from_the_preset_files(tmp_path: Path, monkeypatch):
    import nasattn.presets as presets

    folder = tmp_path / "presets"
    folder.mkdir()
    for f in presets.PRESET_DIR.glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    text = (folder / "cbam.yaml").read_text().replace("test_accuracy: 0.9598", "test_accuracy: 0.9111")
    (folder / "cbam_wide.yaml").write_text(text)
    monkeypatch.setattr(presets, "PRESET_DIR", folder)
    abl = tmp_path / "abl"
    abl.mkdir()
    _ablation(abl, {"base": {0: 10, 1: 12, 2: 11}, "paper_cbam_wide": {0: 20, 1: 25, 2: 21}})
    paper = _table(render_report(abl).read_text(), "table-ablation-paper")
    assert "paper_cbam_wide (cbam_wide)" in paper and "91.11%" in paper
    assert "base (balanced)" in paper and "97.23%" in paper


def test_ci_clipped_in_the_report(tmp_path: Path):
    wrong = {"base": {0: 0, 1: 3}, "v": {0: 1, 1: 0}}  # 100% and 98.5%: the t interval would pass 100%
    html = render_report(_ablation(tmp_path, wrong)).read_text()
    table = _table(html, "table-ablation-variants")
    cis = re.findall(r"\[(\d+\.\d+), (\d+\.\d+)\]%", table)
    assert cis and all(float(hi) <= 100.0 for _, hi in cis)
    assert "100.00]%" in table
