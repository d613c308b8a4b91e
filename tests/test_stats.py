"""nasattn.report.stats and ablation_stats against scipy.stats, statsmodels and hand-computed cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from nasattn.report.ablation_stats import analyze
from nasattn.report.stats import adjust_pvalues, compare, mcnemar_exact, mcnemar_from_predictions, pooled_mcnemar, summarize

N_TEST = 4050


def test_summarize_matches_scipy_and_clips_to_the_range():
    xs = [0.912, 0.931, 0.905, 0.925]
    s = summarize(xs)
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=stats.sem(xs))
    assert (s.n, s.mean, s.std) == (4, pytest.approx(np.mean(xs)), pytest.approx(np.std(xs, ddof=1)))
    assert (s.ci_low, s.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert not s.few
    two = [0.99, 1.0]  # n = 2: the t interval runs past 100%
    lo, hi = stats.t.interval(0.95, 1, loc=np.mean(two), scale=stats.sem(two))
    assert hi > 1.0
    clipped = summarize(two, bounds=(0.0, 1.0))
    assert clipped.ci_high == 1.0 and clipped.ci_low == pytest.approx(lo) and clipped.few
    assert summarize([0.5]).ci_low is None and summarize([None, float("nan")]).n == 0


def test_compare_is_scipy_paired_t_with_ci_and_cohens_dz():
    rng = np.random.default_rng(0)
    base = {s: float(x) for s, x in enumerate(rng.uniform(0.85, 0.95, 5))}
    other = {s: base[s] + float(d) for s, d in enumerate(rng.normal(0.01, 0.01, 5))}
    c = compare(base, other)
    keys = sorted(base)
    ref = stats.ttest_rel([other[k] for k in keys], [base[k] for k in keys])
    d = np.array([other[k] - base[k] for k in keys])
    lo, hi = stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d))
    assert c.test == "paired t" and c.n_pairs == 5 and c.df == 4
    assert c.p_value == pytest.approx(ref.pvalue) and c.t == pytest.approx(ref.statistic)
    assert (c.diff, c.ci_low, c.ci_high) == (pytest.approx(d.mean()), pytest.approx(lo), pytest.approx(hi))
    assert c.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    assert c.missing == () and c.note == ""


def test_a_constant_difference_of_whole_images_gets_no_t_test():
    base_counts = [3931, 3940, 3902]
    base = {s: n / N_TEST for s, n in enumerate(base_counts)}
    other = {s: (n + 4) / N_TEST for s, n in enumerate(base_counts)}  # exactly 4 more images on every seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        naive = stats.ttest_rel(list(other.values()), list(base.values())).pvalue
    assert naive < 1e-20  # floating-point noise: what a t-test on the raw fractions says
    c = compare(base, other, resolution=1 / N_TEST)
    assert c.test is None and c.p_value is None and c.sd == 0.0 and c.effect_size is None
    assert c.diff == pytest.approx(4 / N_TEST)
    assert "zero variance" in c.note and "+4 test images" in c.note
    # without a resolution the differences are rounded: the same answer
    assert compare(base, other).p_value is None and "zero variance" in compare(base, other).note


def test_a_missing_seed_pairs_on_the_seeds_both_have():
    base = {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.93}
    other = {0: 0.91, 1: 0.95, 3: 0.935, 5: 0.99}
    c = compare(base, other)
    ref = stats.ttest_rel([0.91, 0.95, 0.935], [0.90, 0.92, 0.93])
    assert c.test == "paired t" and c.n_pairs == 3 and c.paired == (0, 1, 3) and c.missing == (2, 5)
    assert c.p_value == pytest.approx(ref.pvalue)
    assert "paired on the 3 run(s) both have" in c.note and "the variant lacks seed 2" in c.note \
        and "the base lacks seed 5" in c.note
    one = compare({0: 0.9, 1: 0.8}, {1: 0.85})
    assert one.test is None and one.n_pairs == 1 and one.diff == pytest.approx(0.05) and "one pair" in one.note
    split = compare({(0, 1): 0.9, (0, 2): 0.8}, {(0, 1): 0.95})
    assert "seed 0/split 2" in split.note
    two = compare({0: 0.9, 1: 0.8}, {0: 0.95, 1: 0.9})
    assert two.test == "paired t" and two.df == 1 and "only 2 pairs: 1 degree(s) of freedom" in two.note


def test_difference_ci_is_clipped_to_the_metric_range():
    c = compare({0: 0.0, 1: 0.0}, {0: 0.9, 1: 1.0}, bounds=(0.0, 1.0))
    assert c.ci_high == 1.0 and c.ci_low > -1.0
    unclipped = compare({0: 0.0, 1: 0.0}, {0: 0.9, 1: 1.0})
    assert unclipped.ci_high > 1.0


def test_adjusted_p_values_match_statsmodels_and_hand_computed():
    ps = [0.01, 0.04, 0.03]
    assert adjust_pvalues(ps, "holm") == pytest.approx([0.03, 0.06, 0.06])  # 3*0.01, max(2*0.03, .), 0.06
    assert adjust_pvalues(ps, "bh") == pytest.approx([0.03, 0.04, 0.04])
    rng = np.random.default_rng(1)
    many = list(rng.uniform(0, 0.2, 12))
    assert adjust_pvalues(many, "holm") == pytest.approx(list(multipletests(many, method="holm")[1]))
    assert adjust_pvalues(many, "bh") == pytest.approx(list(multipletests(many, method="fdr_bh")[1]))
    assert adjust_pvalues([0.2, None, 0.01], "holm") == pytest.approx([0.2, None, 0.02])
    assert adjust_pvalues([0.2, None], "none") == [0.2, None]
    with pytest.raises(ValueError, match="allowed: holm, bh, none"):
        adjust_pvalues([0.1], "bonferroni")


def test_mcnemar_exact_matches_binomial_and_statsmodels():
    base = np.array([1] * 80 + [1] * 2 + [0] * 9 + [0] * 9, dtype=bool)  # b = 2, c = 9
    other = np.array([1] * 80 + [0] * 2 + [1] * 9 + [0] * 9, dtype=bool)
    t = mcnemar_exact(base, other)
    assert (t.b, t.c, t.n) == (2, 9, 100)
    assert t.p_value == pytest.approx(stats.binomtest(2, 11, 0.5).pvalue)
    assert t.p_value == pytest.approx(sm_mcnemar([[80, 2], [9, 9]], exact=True).pvalue)
    assert mcnemar_exact([True, False], [False, True]).p_value == pytest.approx(1.0)
    assert mcnemar_exact([True] * 6, [False] * 6).p_value == pytest.approx(2 * 0.5 ** 6)  # hand-computed
    assert mcnemar_exact([True, False], [True, False]).p_value is None  # no discordant image

    # from predictions.csv tables, rows in another order, matched on the test image index
    pb = pd.DataFrame({"index": np.arange(100), "label": 0, "pred": np.where(base, 0, 1)})
    pb["correct"] = pb["label"] == pb["pred"]
    po = pd.DataFrame({"index": np.arange(100), "label": 0, "pred": np.where(other, 0, 1)}).sample(frac=1, random_state=0)
    from_files = mcnemar_from_predictions(pb, po)
    assert (from_files.b, from_files.c, from_files.p_value) == (2, 9, t.p_value)
    assert mcnemar_from_predictions(pb, po.iloc[:50]) is None  # not the same test images
    assert mcnemar_from_predictions(pb, None) is None and mcnemar_from_predictions(pb, pd.DataFrame({"x": [1]})) is None

    pooled = pooled_mcnemar([t, mcnemar_exact([True] * 6, [False] * 6)])
    assert (pooled.b, pooled.c, pooled.n, pooled.runs) == (8, 9, 106, 2)
    assert pooled.p_value == pytest.approx(stats.binomtest(8, 17, 0.5).pvalue)


def _rows(acc_counts: dict[str, dict[int, int]], kappas: dict[str, dict[int, float]], status=None) -> pd.DataFrame:
    rows = []
    for v, by_seed in acc_counts.items():
        for seed, n in by_seed.items():
            rows.append({"variant": v, "seed": seed, "split_seed": 42, "status": (status or {}).get((v, seed), "COMPLETE"),
                         "test_accuracy": n / N_TEST, "kappa": kappas[v][seed], "n_test": N_TEST, "run_dir": f"{v}/{seed}"})
    return pd.DataFrame(rows)


def test_analyze_a_whole_ablation():
    counts = {"base": {0: 3931, 1: 3940, 2: 3902}, "plus4": {0: 3935, 1: 3944, 2: 3906},
              "worse": {0: 3900, 1: 3890, 2: 3880}, "broken": {0: 3800, 1: 3700, 2: 3600}}
    kappas = {v: {s: c / N_TEST - 0.03 + 0.001 * s * (i + 1) for s, c in by.items()} for i, (v, by) in enumerate(counts.items())}
    rows = _rows(counts, kappas, status={("broken", 1): "ERROR"})

    rng = np.random.default_rng(2)
    truth = {s: rng.integers(0, 10, 300) for s in range(3)}

    def preds(variant: str, key):
        flip = {"base": 0, "plus4": 3, "worse": 20, "broken": 40}[variant] + int(key)
        p = truth[key].copy()
        p[:flip] = (p[:flip] + 1) % 10
        return pd.DataFrame({"index": np.arange(300), "label": truth[key], "pred": p})

    out = analyze(rows, ["base", "plus4", "worse", "broken"], "base", correction="holm", predictions=preds)
    by = {r["variant"]: r for r in out}
    assert [r["variant"] for r in out] == ["base", "plus4", "worse", "broken"]
    assert by["base"]["test_accuracy_p"] is None and by["base"]["n"] == 3 and not by["base"]["few_seeds"]

    plus4 = by["plus4"]  # +4 images on every seed: no t-test, said why
    assert plus4["test_accuracy_test"] is None and plus4["test_accuracy_p"] is None
    assert plus4["test_accuracy_diff"] == pytest.approx(4 / N_TEST) and "+4 test images" in plus4["test_accuracy_note"]

    worse = by["worse"]
    d = np.array([3900 - 3931, 3890 - 3940, 3880 - 3902]) / N_TEST
    assert worse["test_accuracy_p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    assert worse["test_accuracy_effect_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    acc = np.array([3900, 3890, 3880]) / N_TEST  # the variant's own mean and its t interval (scipy's)
    ci = stats.t.interval(0.95, len(acc) - 1, loc=acc.mean(), scale=stats.sem(acc))
    assert (worse["test_accuracy_ci_low"], worse["test_accuracy_ci_high"]) == pytest.approx(ci)

    broken = by["broken"]  # seed 1 failed: paired on seeds 0 and 2, not Welch
    assert broken["n"] == 2 and broken["few_seeds"] and broken["test_accuracy_n_pairs"] == 2
    assert broken["test_accuracy_test"] == "paired t" and "the variant lacks seed 1" in broken["test_accuracy_note"]
    assert broken["test_accuracy_p"] == pytest.approx(stats.ttest_rel([3800, 3600], [3931, 3902]).pvalue)

    family = [(v, m) for v in ("plus4", "worse", "broken") for m in ("test_accuracy", "kappa")]
    raw = [by[v][f"{m}_p"] for v, m in family]
    want = adjust_pvalues(raw, "holm")
    assert [by[v][f"{m}_p_adj"] for v, m in family] == pytest.approx(want)
    assert sum(p is not None for p in raw) == 5  # plus4's accuracy has none; its kappa is tested

    mc = [mcnemar_exact(preds("base", s)["pred"] == truth[s], preds("worse", s)["pred"] == truth[s]) for s in range(3)]
    assert (worse["mcnemar_b"], worse["mcnemar_c"]) == (sum(t.b for t in mc), sum(t.c for t in mc))
    assert worse["mcnemar_p"] == pytest.approx(pooled_mcnemar(mc).p_value)
    assert by["broken"]["mcnemar_runs"] == 2
    mc_raw = [by[v]["mcnemar_p"] for v in ("plus4", "worse", "broken")]
    assert [by[v]["mcnemar_p_adj"] for v in ("plus4", "worse", "broken")] == pytest.approx(adjust_pvalues(mc_raw, "holm"))
    assert "seed0: b=" in worse["mcnemar_per_run"]
    assert "one fixed split" in worse["ci_covers"] and worse["correction"] == "holm"


def test_analyze_with_repeated_splits_pairs_seed_and_split():
    rows = []
    for v, shift in (("base", 0), ("v", 7)):
        for seed in (0, 1):
            for split in (1, 2):
                rows.append({"variant": v, "seed": seed, "split_seed": split, "status": "COMPLETE", "n_test": N_TEST,
                             "test_accuracy": (3900 + 10 * seed + 3 * split + shift * (1 + seed * split)) / N_TEST,
                             "kappa": 0.9})
    out = analyze(pd.DataFrame(rows), ["base", "v"], "base", correction="bh")
    v = out[1]
    assert v["test_accuracy_n_pairs"] == 4 and v["n"] == 4
    d = np.array([7 * (1 + s * sp) for s in (0, 1) for sp in (1, 2)]) / N_TEST
    assert v["test_accuracy_p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    assert "2 repeated test splits" in v["ci_covers"]
    assert v["kappa_p"] is None and "zero variance" in v["kappa_note"]
    assert math.isclose(v["test_accuracy_p_adj"], v["test_accuracy_p"])  # the only p of the family
