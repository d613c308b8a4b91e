"""Recompute the 2026-11-25 CPU ablation's statistics (reports/ablation-eurosat-cpu.md) with the
statistics of nasattn.stats: paired differences over the 3 seeds on whole test images (4,050 test
images), 95% t CIs, Cohen's d_z, Holm-adjusted p over the four variants (the family of the primary
metric, test accuracy; the per-seed kappas and predictions of that run were not kept, so there is no
secondary metric, no two-level bootstrap and no per-run McNemar here), the exact sign-flip p, the sign
count, the smallest difference 3 seeds detect with 80% power and the verdict sentence.

Input: ablation-eurosat-cpu-seeds.csv (the per-seed test accuracies printed in that report, two
decimals: each is within 0.005 points of a whole number of images). Run from the repository root:
python reports/restat/restat.py > reports/restat/ablation-eurosat-cpu-restat.csv
"""
import csv
import sys
from collections import defaultdict
from pathlib import Path

from nasattn.stats import adjust_pvalues, compare, verdict

N_TEST = 4050
rows = list(csv.DictReader(open(Path(__file__).with_name("ablation-eurosat-cpu-seeds.csv"))))
acc: dict[str, dict[int, float]] = defaultdict(dict)
for r in rows:  # back to whole test images, then to a fraction
    acc[r["variant"]][int(r["seed"])] = round(float(r["test_accuracy_pct"]) / 100 * N_TEST) / N_TEST
variants = [v for v in acc if v != "base"]
comps = {v: compare(acc["base"], acc[v], resolution=1 / N_TEST, bounds=(0.0, 1.0)) for v in variants}
adj = adjust_pvalues([comps[v].p_value for v in variants], "holm")
out = csv.writer(sys.stdout)
out.writerow(["variant", "n_pairs", "diff_points", "diff_ci_low", "diff_ci_high", "effect_dz", "p_raw", "p_holm",
              "p_sign_flip", "seeds_better", "detectable_points", "verdict", "note"])
for v, p_adj in zip(variants, adj):
    c = comps[v]
    pct = lambda x: "" if x is None else f"{100 * x:+.2f}"  # noqa: E731
    row = {"test_accuracy_diff": c.diff, "test_accuracy_diff_ci_low": c.ci_low, "test_accuracy_diff_ci_high": c.ci_high,
           "test_accuracy_p_adj": p_adj, "test_accuracy_n_pairs": c.n_pairs, "test_accuracy_sd": c.sd,
           "test_accuracy_better": c.signs and c.signs.better, "test_accuracy_perm_p": c.perm_p,
           "test_accuracy_detectable": c.resolution and c.resolution.detectable}
    out.writerow([v, c.n_pairs, pct(c.diff), pct(c.ci_low), pct(c.ci_high),
                  "" if c.effect_size is None else f"{c.effect_size:.2f}",
                  "" if c.p_value is None else f"{c.p_value:.4f}", "" if p_adj is None else f"{p_adj:.4f}",
                  "" if c.perm_p is None else f"{c.perm_p:.3f}", "" if c.signs is None else c.signs.better,
                  "" if c.resolution is None or c.resolution.detectable is None else f"{100 * c.resolution.detectable:.2f}",
                  verdict(row, unit="seeds"), c.note or ""])
