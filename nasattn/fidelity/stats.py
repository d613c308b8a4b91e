"""Rank agreement between a cheap and an expensive ranking: correlations with bootstrap CIs, overlap, regret."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

MIN_POINTS = 3  # fewer points give no correlation
MIN_POINTS_CI = 3  # fewer points give no bootstrap interval (3 give a wide one)


@dataclass(frozen=True)
class Correlation:
    """Spearman or Kendall correlation of ``n`` pairs with a percentile-bootstrap 95% interval.

    ``dropped`` counts bootstrap resamples where the statistic is undefined (a constant resample);
    they are left out of the interval. ``note`` says why a value is missing.
    """

    method: str
    n: int
    value: float
    p_value: float
    ci_low: float
    ci_high: float
    dropped: int = 0
    note: str = ""


def _pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def correlation(x: Sequence[float], y: Sequence[float], method: str = "spearman", *, n_resamples: int = 2000,
                seed: int = 0, confidence: float = 0.95, ci: bool = True) -> Correlation:
    """``scipy.stats.spearmanr`` / ``kendalltau`` of the finite pairs, with a paired bootstrap CI.

    The interval is the percentile interval of ``scipy.stats.bootstrap``'s distribution over the
    resamples where the statistic is defined; ``ci=False`` skips it (NaN bounds).
    """
    from scipy import stats

    func = {"spearman": stats.spearmanr, "kendall": stats.kendalltau}[method]
    a, b = _pairs(x, y)
    n = len(a)
    nan = math.nan
    if n < MIN_POINTS:
        return Correlation(method, n, nan, nan, nan, nan, note=f"{n} pairs: a correlation needs at least {MIN_POINTS}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = func(a, b)
    value, p = float(res.statistic), float(res.pvalue)
    if not math.isfinite(value):
        return Correlation(method, n, nan, nan, nan, nan, note="one of the rankings is constant")
    if not ci:
        return Correlation(method, n, value, p, nan, nan)
    if n < MIN_POINTS_CI:
        return Correlation(method, n, value, p, nan, nan, note=f"{n} pairs: no bootstrap interval below {MIN_POINTS_CI}")

    def kendall(u: np.ndarray, v: np.ndarray) -> float:
        return float(stats.kendalltau(u, v).statistic)

    def spearman(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
        # Spearman's rho is Pearson's r of the ranks: vectorised over all resamples at once
        return stats.pearsonr(stats.rankdata(u, axis=axis), stats.rankdata(v, axis=axis), axis=axis).statistic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = stats.bootstrap((a, b), spearman if method == "spearman" else kendall, paired=True,
                               vectorized=method == "spearman", n_resamples=n_resamples, method="percentile",
                               confidence_level=confidence, rng=np.random.default_rng(seed))
    dist = np.asarray(boot.bootstrap_distribution, dtype=float)
    valid = dist[np.isfinite(dist)]
    dropped = int(len(dist) - len(valid))
    if len(valid) < len(dist) / 2:
        return Correlation(method, n, value, p, nan, nan, dropped, "most bootstrap resamples are constant: no interval")
    alpha = (1 - confidence) / 2
    lo, hi = np.percentile(valid, [100 * alpha, 100 * (1 - alpha)])
    return Correlation(method, n, value, p, float(lo), float(hi), dropped)


def top_k_overlap(low: Sequence[float], high: Sequence[float], k: int) -> float:
    """Share of the ``k`` best by ``low`` that are among the ``k`` best by ``high`` (higher is better)."""
    a, b = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    k = min(k, len(a))
    if k == 0:
        return math.nan
    top_low = set(np.argsort(-a, kind="stable")[:k].tolist())
    top_high = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(top_low & top_high) / k


def regret(low: Sequence[float], high: Sequence[float]) -> float:
    """Best ``high`` minus the ``high`` of the point ranked first by ``low`` (0: the cheap winner is best)."""
    a, b = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return math.nan
    return float(b.max() - b[int(np.argmax(a))])
