"""nasattn.stats against scipy.stats, statsmodels, closed forms and hand-computed cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from nasattn.stats.correlation import kendall_tau_b
from nasattn.stats import (adjust_pvalues, analyze, compare, correlation, improvement_probability, mcnemar_exact,
                           mcnemar_from_predictions, rediscovery_verdict, resolution, sign_count, sign_flip_p, summarize,
                           two_level_ci, two_level_resamples, verdict)

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
    assert one.test is None and one.n_pairs == 1 and one.diff == pytest.approx(0.05) and "not testable" in one.note
    split = compare({(0, 1): 0.9, (0, 2): 0.8}, {(0, 1): 0.95})
    assert "seed 0/split 2" in split.note
    two = compare({0: 0.9, 1: 0.8}, {0: 0.95, 1: 0.9})  # fewer than 3 runs: not testable, no p
    assert two.test is None and two.p_value is None and two.perm_p is None and not two.testable
    assert "not testable: 2 run(s)" in two.note


def test_difference_ci_is_clipped_to_the_metric_range():
    c = compare({0: 0.0, 1: 0.0, 2: 0.0}, {0: 0.9, 1: 1.0, 2: 0.6}, bounds=(0.0, 1.0))
    assert c.ci_high == 1.0 and c.ci_low > -1.0
    unclipped = compare({0: 0.0, 1: 0.0, 2: 0.0}, {0: 0.9, 1: 1.0, 2: 0.6})
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

    broken = by["broken"]  # seed 1 failed: 2 pairs (seeds 0 and 2), not testable, no p
    assert broken["n"] == 2 and broken["few_seeds"] and broken["test_accuracy_n_pairs"] == 2
    assert broken["test_accuracy_test"] is None and broken["test_accuracy_p"] is None
    assert "the variant lacks seed 1" in broken["test_accuracy_note"] and "not testable" in broken["verdict"]

    # the family of the verdict: test accuracy over the variants, nothing else (kappa has its own)
    for m in ("test_accuracy", "kappa"):
        raw = [by[v][f"{m}_p"] for v in ("plus4", "worse", "broken")]
        assert [by[v][f"{m}_p_adj"] for v in ("plus4", "worse", "broken")] == pytest.approx(adjust_pvalues(raw, "holm"))
    assert worse["test_accuracy_p_adj"] == pytest.approx(worse["test_accuracy_p"])  # the only accuracy p

    mc = [mcnemar_exact(preds("base", s)["pred"] == truth[s], preds("worse", s)["pred"] == truth[s]) for s in range(3)]
    assert all(f"seed{s}: b={t.b} c={t.c}" in worse["mcnemar_per_run"] for s, t in enumerate(mc))
    assert worse["mcnemar_per_run"].startswith("these two trained models disagree on these images")
    assert not any(k in worse for k in ("mcnemar_p", "mcnemar_b", "mcnemar_p_adj", "mcnemar_runs"))  # no pooled test
    assert worse["boot_ci_low"] < worse["boot_ci_high"] < 0  # 20 more images wrong of 300 on every seed
    assert (worse["test_accuracy_better"], worse["test_accuracy_worse"]) == (0, 3)
    assert worse["test_accuracy_perm_p"] == pytest.approx(0.25)  # 2 of the 8 sign flips are as extreme
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


# ------------------------------------------------------------------ inference on runs (issue 21, section 1)
@pytest.mark.parametrize("n", [3, 5, 8])
def test_sign_flip_p_is_scipys_exact_permutation_test(n):
    d = np.random.default_rng(n).normal(0.01, 0.02, n)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf).pvalue
    assert sign_flip_p(d) == pytest.approx(ref)
    assert sign_flip_p([0.02, 0.01, 0.03]) == pytest.approx(2 / 8)  # only all-plus and all-minus are as extreme
    # in steps of 0.01: sum 2 - 1 + 3 + 1 = 5 of 7; a flip of a subset summing to s gives 7 - 2s, as extreme
    # when s <= 1 ({}, either 1) or s >= 6 (their complements): 6 of the 16 flips
    assert sign_flip_p([0.02, -0.01, 0.03, 0.01]) == pytest.approx(6 / 16)


def test_sign_count_and_improvement_probability():
    s = sign_count([0.01, 0.02, 0.0, -0.01, 0.03])
    assert (s.better, s.worse, s.tied) == (3, 1, 1) and s.text() == "3 of 5 runs better (1 worse, 1 tied)"
    assert s.p_value == pytest.approx(stats.binomtest(3, 4, 0.5).pvalue)
    assert sign_count([0.01] * 3).text("seeds") == "3 of 3 seeds better"
    p = improvement_probability([0.01, 0.02, -0.01])
    ref = stats.binomtest(2, 3).proportion_ci(0.95, method="exact")
    assert (p.value, p.ci_low, p.ci_high) == pytest.approx((2 / 3, ref.low, ref.high))


def _power(effect: float, n: int) -> float:
    """Power of the two-sided 5% paired t-test from the noncentral t (closed form, not statsmodels)."""
    crit = stats.t.ppf(0.975, n - 1)
    nc = effect * math.sqrt(n)
    return float(stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc))


def test_resolution_has_80_percent_power_at_the_detectable_difference():
    r = resolution(0.01, 0.02, 3)
    assert _power(r.detectable / 0.02, 3) == pytest.approx(0.8, abs=1e-4)
    assert _power(0.5, r.runs_needed) >= 0.8 > _power(0.5, r.runs_needed - 1)  # effect 0.01 / 0.02
    zero = resolution(0.01, 0.0, 3)
    assert zero.detectable is None and "SD of the differences is 0" in zero.note
    c = compare({0: 0.80, 1: 0.82, 2: 0.81}, {0: 0.83, 1: 0.84, 2: 0.86})
    assert c.resolution.detectable == pytest.approx(resolution(c.diff, c.sd, 3).detectable)


def _simulated_ablations(n_sims: int, runs: int, images: int, truth: float, seed_sd: float, rng: np.random.Generator):
    """Synthetic ablations: run r's true difference is truth + N(0, seed_sd); each image of a run is right for the
    base with p 0.8 and for the variant with 0.8 + that difference, independently (the per-image noise)."""
    for _ in range(n_sims):
        run_diff = truth + rng.normal(0, seed_sd, runs)
        base = rng.random((runs, images)) < 0.8
        other = rng.random((runs, images)) < np.clip(0.8 + run_diff, 0, 1)[:, None]
        yield base, other


def test_two_level_bootstrap_covers_the_true_difference():
    rng = np.random.default_rng(7)
    truth, runs = 0.03, 6
    boot_hits = t_hits = 0
    n_sims = 500
    for base, other in _simulated_ablations(n_sims, runs, 200, truth, 0.04, rng):
        ci = two_level_ci(base, other, n_resamples=300, seed=int(rng.integers(1 << 30)))
        boot_hits += ci.ci_low <= truth <= ci.ci_high
        d = other.mean(1) - base.mean(1)
        lo, hi = stats.t.interval(0.95, runs - 1, loc=d.mean(), scale=stats.sem(d))
        t_hits += lo <= truth <= hi
    coverage, t_coverage = boot_hits / n_sims, t_hits / n_sims
    print(f"coverage over {n_sims} simulated ablations: two-level bootstrap {coverage:.3f}, t interval {t_coverage:.3f}")
    assert 0.92 <= coverage <= 0.98
    assert 0.90 <= t_coverage <= 0.99


def test_two_level_resamples_pair_images_and_runs():
    base = np.array([[True, False, True, True], [True, True, False, True]])
    same = two_level_resamples(base, base, n_resamples=50)
    assert np.all(same == 0)  # paired by image: a model against itself never differs
    other = ~base
    boot = two_level_resamples(base, other, n_resamples=2000, rng=np.random.default_rng(0))
    assert boot.mean() == pytest.approx((other.mean() - base.mean()), abs=0.02)
    with pytest.raises(ValueError, match="one shape"):
        two_level_ci(base, other[:, :3])


# ------------------------------------------------------------------ verdicts (issue 21, section 3)
def _row(diff, lo, hi, p_adj, n=3, better=3, sd=0.01, detectable=0.02):
    return {"test_accuracy_diff": diff, "test_accuracy_diff_ci_low": lo, "test_accuracy_diff_ci_high": hi,
            "test_accuracy_p_adj": p_adj, "test_accuracy_n_pairs": n, "test_accuracy_better": better,
            "test_accuracy_sd": sd, "test_accuracy_detectable": detectable}


def test_verdict_sentences():
    assert verdict(_row(0.0555, 0.04, 0.07, 0.004)) == \
        "better by 5.55 points (95% CI +4.00 points to +7.00 points, adjusted p = 0.004; 3 of 3 runs better)"
    assert verdict(_row(-0.031, -0.05, -0.01, 0.012, better=0)).startswith("worse by 3.10 points (95% CI -5.00 points")
    assert verdict(_row(0.0555, -0.003, 0.114, 0.22, detectable=0.0903)) == \
        "not distinguishable with 3 runs (detectable: >= 9.03 points; observed +5.55 points, adjusted p = 0.22)"
    assert verdict(_row(0.03, None, None, None, n=1)).startswith("not testable with 1 run (a test needs 3")
    assert "SD 0" in verdict(_row(0.001, None, None, None, sd=0.0))
    assert verdict({"test_accuracy_diff": None}) == ""
    assert verdict({**_row(0.1, 0.05, 0.15, 0.001), "kappa_diff": 0.3}, "test_accuracy").startswith("better")


def test_rediscovery_verdict():
    assert rediscovery_verdict(None, None) == "rediscovered"
    assert rediscovery_verdict(25, _row(0.0555, 0.04, 0.07, 0.004)) == "beaten by trial 25"
    assert rediscovery_verdict(25, _row(0.0555, -0.003, 0.114, 0.22)) == \
        "not distinguishable from trial 25 at this budget"
    assert rediscovery_verdict(25, _row(0.0555, None, None, None, n=1)) == "cannot tell"
    assert rediscovery_verdict(25, None) == "cannot tell"


# ------------------------------------------------------------------ correlations at small n (section 2)
def test_fisher_z_intervals_are_the_closed_forms():
    x = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9])
    y = np.array([2.0, 1, 4, 3, 6, 5, 9, 7, 8])
    sp, kt = correlation(x, y, "spearman", n_resamples=200), correlation(x, y, "kendall", n_resamples=200)
    r, n, z = stats.spearmanr(x, y).statistic, 9, stats.norm.ppf(0.975)
    se = math.sqrt((1 + r * r / 2) / (n - 3))  # Bonett & Wright (2000)
    assert (sp.ci_low, sp.ci_high) == pytest.approx((math.tanh(math.atanh(r) - z * se), math.tanh(math.atanh(r) + z * se)))
    tau = stats.kendalltau(x, y).statistic
    se = math.sqrt(0.437 / (n - 4))  # Fieller, Hartley & Pearson (1957)
    assert (kt.ci_low, kt.ci_high) == pytest.approx((math.tanh(math.atanh(tau) - z * se), math.tanh(math.atanh(tau) + z * se)))
    assert "interval is wide" in sp.note and sp.p_method == "exact permutation"


def test_exact_permutation_p_of_rank_correlations_is_scipys():
    x = np.array([1.0, 2, 2, 3, 4, 5])  # a tie in x and in y
    y = np.array([2.0, 1, 3, 3, 5, 4])
    ref = stats.permutation_test((y,), lambda v: stats.spearmanr(x, v).statistic, permutation_type="pairings",
                                 n_resamples=np.inf).pvalue
    assert correlation(x, y, "spearman", ci=False).p_value == pytest.approx(ref)
    u = np.array([3.0, 1, 4, 1.5, 5, 9])
    v = np.array([2.0, 7, 1, 8, 2.8, 1.8])
    ref = stats.permutation_test((v,), lambda w: stats.kendalltau(u, w).statistic, permutation_type="pairings",
                                 n_resamples=np.inf).pvalue
    assert correlation(u, v, "kendall", ci=False).p_value == pytest.approx(ref)


def test_kendall_with_ties_is_scipys_tau_b_and_permutation_p():
    """The vectorised tau-b equals kendalltau's on tied rankings; the tied p equals scipy's per-pairing
    permutation_test (n = 6: all 720 pairings either way), the bootstrap interval its per-resample one."""
    rng = np.random.default_rng(1)
    for n in (4, 6, 9):
        a, ys = rng.integers(0, 3, n).astype(float), rng.integers(0, 4, (5, n)).astype(float)
        ref = [stats.kendalltau(a, y).statistic for y in ys]
        assert kendall_tau_b(np.tile(a, (5, 1)).T, ys.T, axis=0) == pytest.approx(ref, nan_ok=True)
    u = np.array([1.0, 2, 2, 3, 4, 4])
    v = np.array([2.0, 1, 3, 3, 5, 4])
    ref = stats.permutation_test((v,), lambda w: stats.kendalltau(u, w).statistic, permutation_type="pairings",
                                 n_resamples=np.inf).pvalue
    c = correlation(u, v, "kendall", n_resamples=300)
    assert c.p_value == pytest.approx(ref)
    boot = stats.bootstrap((u, v), lambda x, y: stats.kendalltau(x, y).statistic, paired=True, vectorized=False,
                           n_resamples=300, method="percentile", rng=np.random.default_rng(0)).bootstrap_distribution
    low, high = np.percentile(boot[np.isfinite(boot)], [2.5, 97.5])
    assert c.boot_low == pytest.approx(low) and high == 1 and math.isnan(c.boot_high)  # a bound at 1 is not shown


def test_no_bootstrap_bound_from_tied_resamples():
    x = np.arange(9.0)
    y = x + np.array([0, 0, 0, 0, 0, 0, 0, 0.5, -3])  # nearly monotone: many resamples give rho = 1
    c = correlation(x, y, "spearman", n_resamples=500)
    assert math.isnan(c.boot_high) and c.ci_high < 1  # the bootstrap's +1 is not shown; Fisher z stays below 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = stats.bootstrap((x, y), lambda a, b: stats.spearmanr(a, b).statistic, paired=True, vectorized=False,
                              n_resamples=500, method="percentile", rng=np.random.default_rng(0))
    assert raw.confidence_interval.high == pytest.approx(1.0)  # what the plain bootstrap would have shown


# ------------------------------------------------------------------ summary.csv of `nasattn ablate`
def test_summary_csv_has_no_pooled_mcnemar_and_no_kappa_in_the_accuracy_family(tmp_path):
    from nasattn.ablation.run import write_outputs

    rng = np.random.default_rng(3)
    truth = rng.integers(0, 10, 200)
    rows = []
    wrong = {"base": (20, 24, 22), "a": (10, 15, 12), "b": (30, 27, 35)}
    for v, per_seed in wrong.items():
        for seed, k in enumerate(per_seed):
            d = tmp_path / "runs" / v / f"seed{seed}"
            d.mkdir(parents=True)
            pred = truth.copy()
            pred[:k] = (pred[:k] + 1) % 10
            pd.DataFrame({"index": np.arange(200), "label": truth, "pred": pred}).to_csv(d / "predictions.csv", index=False)
            rows.append({"variant": v, "seed": seed, "split_seed": 42, "status": "COMPLETE", "error": None,
                         "run_dir": str(d), "test_accuracy": 1 - k / 200, "kappa": 1 - k / 180 + 0.002 * seed,
                         "n_test": 200})
    summary = pd.read_csv(write_outputs(tmp_path, rows, list(wrong), report=False).summary_csv).set_index("variant")
    assert not [c for c in summary.columns if c.startswith("mcnemar") and c != "mcnemar_per_run"]  # nothing pooled
    acc_raw = [summary.loc[v, "test_accuracy_p"] for v in ("a", "b")]
    assert list(summary.loc[["a", "b"], "test_accuracy_p_adj"]) == pytest.approx(adjust_pvalues(acc_raw, "holm"))
    both = adjust_pvalues(acc_raw + [summary.loc[v, "kappa_p"] for v in ("a", "b")], "holm")[:2]
    assert list(summary.loc[["a", "b"], "test_accuracy_p_adj"]) != pytest.approx(both)  # kappa is not in the family
    assert summary.loc["a", "verdict"].startswith(("better by", "not distinguishable"))
    assert summary.loc["a", "test_accuracy_better"] == 3 and summary.loc["b", "test_accuracy_worse"] == 3
    assert summary.loc["a", "boot_ci_low"] > 0 and summary.loc["b", "boot_ci_high"] < 0


def test_the_console_table_prints_the_verdict():
    from rich.console import Console

    from nasattn.ablation.run import print_summary

    rows = [{"variant": v, "seed": s, "status": "COMPLETE", "test_accuracy": a, "kappa": a, "n_test": 2000}
            for v, accs in (("base", (0.80, 0.82, 0.81)), ("a", (0.85, 0.86, 0.87)), ("b", (0.79, 0.83, 0.80)))
            for s, a in enumerate(accs)]
    console = Console(record=True, width=400)
    print_summary(analyze(pd.DataFrame(rows), ["base", "a", "b"], "base"), console)
    text = console.export_text()
    p = stats.ttest_1samp([0.05, 0.04, 0.06], 0).pvalue * 2  # Holm over a and b: a's is the smaller p
    assert f"better by 5.00 points (95% CI +2.52 points to +7.48 points, adjusted p = {p:.2g}; 3 of 3 runs better)" in text
    assert "not distinguishable with 3 runs (detectable: >= 3.77 points" in text
