"""Recompute the 2026-11-25 CPU ablation's statistics (reports/ablation-eurosat-cpu.md) with the
statistics of nasattn.report.stats: paired differences on whole test images (4,050 test images),
95% CIs, Cohen's d_z, and Holm-adjusted p over the four variants (test accuracy only: the per-seed
kappas and predictions of that run were not kept, so there is no McNemar test here).

Input: ablation-eurosat-cpu-seeds.csv (the per-seed test accuracies printed in that report, two
decimals: each is within 0.005 points of a whole number of images). Run from the repository root:
python reports/restat/restat.py > reports/restat/ablation-eurosat-cpu-restat.csv
"""
import csv
import sys
from collections import defaultdict
from pathlib import Path

from nasattn.report.stats import adjust_pvalues, compare

N_TEST = 4050
rows = list(csv.DictReader(open(Path(__file__).with_name("ablation-eurosat-cpu-seeds.csv"))))
acc: dict[str, dict[int, float]] = defaultdict(dict)
for r in rows:  # back to whole test images, then to a fraction
    acc[r["variant"]][int(r["seed"])] = round(float(r["test_accuracy_pct"]) / 100 * N_TEST) / N_TEST
variants = [v for v in acc if v != "base"]
comps = {v: compare(acc["base"], acc[v], resolution=1 / N_TEST, bounds=(0.0, 1.0)) for v in variants}
adj = adjust_pvalues([comps[v].p_value for v in variants], "holm")
out = csv.writer(sys.stdout)
out.writerow(["variant", "n_pairs", "diff_points", "diff_ci_low", "diff_ci_high", "effect_dz", "p_raw", "p_holm", "note"])
for v, p_adj in zip(variants, adj):
    c = comps[v]
    pct = lambda x: "" if x is None else f"{100 * x:+.2f}"  # noqa: E731
    out.writerow([v, c.n_pairs, pct(c.diff), pct(c.ci_low), pct(c.ci_high),
                  "" if c.effect_size is None else f"{c.effect_size:.2f}",
                  "" if c.p_value is None else f"{c.p_value:.4f}", "" if p_adj is None else f"{p_adj:.4f}", c.note or ""])
