"""Inference on paired differences over runs (one difference per seed, or per seed x split seed).

* :func:`sign_flip_p`: the exact two-sided sign-flip permutation p of the mean difference (all 2^n
  flips for n <= :data:`EXACT_FLIPS`; ``scipy.stats.permutation_test`` with random flips above).
* :func:`sign_count`: how many runs are better / worse / tied, and the two-sided sign-test p.
* :func:`resolution`: the smallest difference the design detects (80% power, 5% two-sided paired t,
  from the observed SD and n; ``statsmodels`` ``TTestPower``) and the runs needed to resolve the
  observed difference.
* :func:`improvement_probability`: P(variant > base) over runs with its Clopper-Pearson CI.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.power import TTestPower

EXACT_FLIPS = 12
MIN_RUNS = 3  # fewer runs: "not testable", no p
POWER, ALPHA = 0.8, 0.05
MAX_RUNS = 10_000  # runs needed above this are reported as "more than"


def sign_flip_p(d: Sequence[float], *, n_resamples: int = 9999, seed: int = 0) -> float:
    """Two-sided permutation p of mean(d) under random sign flips (the paired null: no difference).

    Exact over all 2^n sign vectors for n <= 12 (p = share of flips whose |mean| >= the observed, with a
    1e-12 relative tolerance for ties); above, ``scipy.stats.permutation_test`` with ``n_resamples``.
    """
    x = np.asarray(d, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("sign_flip_p needs at least one difference")
    if n > EXACT_FLIPS:
        res = stats.permutation_test((x,), np.mean, permutation_type="samples", n_resamples=n_resamples,
                                     vectorized=False, rng=np.random.default_rng(seed))
        return float(res.pvalue)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    means = np.abs(signs @ x) / n
    obs = abs(float(x.mean()))
    return float(np.mean(means >= obs - 1e-12 * max(obs, 1e-300)))


@dataclass(frozen=True)
class SignCount:
    """Runs where the variant is better, worse, tied; ``p_value``: exact two-sided sign test (ties dropped)."""

    better: int
    worse: int
    tied: int
    p_value: float | None

    @property
    def n(self) -> int:
        return self.better + self.worse + self.tied

    def text(self, unit: str = "runs") -> str:
        """``"3 of 3 runs better"`` (ties and worse runs named when there are any)."""
        extra = [f"{k} {w}" for k, w in ((self.worse, "worse"), (self.tied, "tied")) if k]
        return f"{self.better} of {self.n} {unit} better" + (f" ({', '.join(extra)})" if extra else "")


def sign_count(d: Sequence[float]) -> SignCount:
    """Sign counts of the differences and the exact binomial sign test (p = 1/2) over the untied runs."""
    x = np.asarray(d, dtype=float)
    better, worse = int(np.sum(x > 0)), int(np.sum(x < 0))
    p = None if better + worse == 0 else float(stats.binomtest(better, better + worse, 0.5).pvalue)
    return SignCount(better, worse, len(x) - better - worse, p)


@dataclass(frozen=True)
class Resolution:
    """``detectable``: smallest |difference| with 80% power (two-sided 5%) at this n and SD; ``runs_needed``:
    runs giving 80% power for the observed difference; ``note`` says why either is missing."""

    detectable: float | None
    runs_needed: int | None
    note: str = ""


def resolution(diff: float, sd: float | None, n: int, *, power: float = POWER, alpha: float = ALPHA) -> Resolution:
    """Power of the paired t-test at the observed SD (``TTestPower``: effect size = difference / SD)."""
    if n < 2 or sd is None:
        return Resolution(None, None, f"{n} run(s): no SD, no power estimate")
    if sd == 0:
        return Resolution(None, None, "the observed SD of the differences is 0: every run differs by the same "
                                      "amount, so no power estimate (more runs would show the spread)")
    tp = TTestPower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dz = float(tp.solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided"))
        needed: int | None = None
        note = ""
        if diff == 0:
            note = "the observed difference is 0: no number of runs resolves it"
        else:
            effect = abs(diff) / sd
            needed = _runs_for(tp, effect, power, alpha)
            if needed is None:
                note = f"more than {MAX_RUNS} runs to resolve the observed difference"
    return Resolution(dz * sd, needed, note)


def _runs_for(tp: TTestPower, effect: float, power: float, alpha: float) -> int | None:
    """The smallest n in [MIN_RUNS, MAX_RUNS] (a test needs 3 runs) whose power reaches ``power`` (power grows with n: doubling, then
    bisection). A NaN power (scipy's noncentral t at a huge noncentrality, where the power is 1) counts as reached."""
    def ok(n: int) -> bool:
        return not float(tp.power(effect, n, alpha, alternative="two-sided")) < power

    hi = MIN_RUNS
    while not ok(hi):
        if hi >= MAX_RUNS:
            return None
        hi = min(2 * hi, MAX_RUNS)
    lo = max(MIN_RUNS, hi // 2)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
    return lo


@dataclass(frozen=True)
class Probability:
    """P(variant > base) over runs (share of runs better; a tie counts as not better) with its exact
    (Clopper-Pearson) 95% CI."""

    value: float
    ci_low: float
    ci_high: float
    n: int


def improvement_probability(d: Sequence[float], confidence: float = 0.95) -> Probability | None:
    """Share of runs where the variant beats the base, with the Clopper-Pearson interval; None without runs."""
    x = np.asarray(d, dtype=float)
    if len(x) == 0:
        return None
    k = int(np.sum(x > 0))
    ci = stats.binomtest(k, len(x)).proportion_ci(confidence, method="exact")
    return Probability(k / len(x), float(ci.low), float(ci.high), len(x))
