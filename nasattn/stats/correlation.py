"""Rank agreement between a cheap and an expensive ranking: correlations with Fisher-z CIs, overlap, regret.

Interval: Fisher z of the rank correlation with the standard error of Bonett & Wright (2000) for
Spearman, sqrt((1 + r^2 / 2) / (n - 3)), and of Fieller, Hartley & Pearson (1957) for Kendall,
sqrt(0.437 / (n - 4)); back-transformed with tanh. p-value: exact permutation p for n <= 10
(Spearman: all n! pairings, counted by dynamic programming; Kendall: ``kendalltau``'s exact
distribution without ties, 9999 random pairings with ties), scipy's asymptotic p above. A paired
percentile bootstrap is a secondary column; a bootstrap bound at +-1 (resamples that repeat points
create ties and perfect agreement) is not shown.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

MIN_POINTS = 3  # fewer points give no correlation
EXACT_N = 10  # up to this many points the p-value is an exact permutation p
WIDE_N = 10  # below this many points the report says the interval is wide
FISHER_MIN = {"spearman": 4, "kendall": 5}  # Fisher z needs n > 3 (Spearman), n > 4 (Kendall)


@dataclass(frozen=True)
class Correlation:
    """Spearman or Kendall correlation of ``n`` pairs with its Fisher-z 95% interval (``ci_low``/``ci_high``)
    and a secondary percentile-bootstrap interval (``boot_low``/``boot_high``; NaN when a bound is +-1).

    ``p_method``: "exact permutation" or "asymptotic"; ``dropped``: bootstrap resamples where the statistic
    is undefined (a constant resample); ``note`` says why a value is missing or why the interval is wide.
    """

    method: str
    n: int
    value: float
    p_value: float
    ci_low: float
    ci_high: float
    dropped: int = 0
    note: str = ""
    boot_low: float = math.nan
    boot_high: float = math.nan
    p_method: str = ""


def _pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def fisher_se(method: str, r: float, n: int) -> float:
    """Standard error of atanh(r): Bonett-Wright for Spearman, Fieller for Kendall."""
    if method == "spearman":
        return math.sqrt((1 + r * r / 2) / (n - 3))
    return math.sqrt(0.437 / (n - 4))


def fisher_ci(method: str, r: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """tanh(atanh(r) -+ z * se); NaN below the n the standard error needs or at |r| = 1."""
    if n < FISHER_MIN[method] or abs(r) >= 1 - 1e-12:
        return math.nan, math.nan
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    centre, half = math.atanh(r), z * fisher_se(method, r, n)
    return math.tanh(centre - half), math.tanh(centre + half)


def exact_p(method: str, a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided permutation p of the rank correlation over pairings (see the module docstring)."""
    if method == "kendall":
        ties = len(np.unique(a)) < len(a) or len(np.unique(b)) < len(b)
        if not ties:
            return float(stats.kendalltau(a, b, method="exact").pvalue)
        res = stats.permutation_test((b,), lambda y, axis=-1: kendall_tau_b(a, y, axis), permutation_type="pairings",
                                     vectorized=True, n_resamples=9999, rng=np.random.default_rng(0))
        return float(res.pvalue)
    return spearman_exact_p(a, b)


def kendall_tau_b(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
    """``kendalltau(u, v)``'s tau-b for every pair of rankings along ``axis`` at once (for scipy's
    ``permutation_test`` and ``bootstrap`` with ``vectorized=True``: one call per batch of resamples).

    tau-b = sum over pairs i < j of sign(u_j - u_i) * sign(v_j - v_i), divided by the square root of the
    product of the numbers of pairs untied in ``u`` and untied in ``v``.
    """
    u, v = (np.moveaxis(np.asarray(w, dtype=float), axis, -1) for w in (u, v))
    i, j = np.triu_indices(u.shape[-1], 1)
    su, sv = np.sign(u[..., j] - u[..., i]), np.sign(v[..., j] - v[..., i])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (su * sv).sum(axis=-1) / np.sqrt(np.count_nonzero(su, axis=-1) * np.count_nonzero(sv, axis=-1))


def spearman_exact_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided permutation p of Spearman's rho over all n! pairings (ties kept as average ranks).

    rho is monotone in S = sum(rank_a[i] * rank_b[pi(i)]), so the null distribution of S is counted
    over permutations by dynamic programming on the set of ranks already placed (2^n states).
    """
    ra = np.rint(2 * stats.rankdata(a)).astype(np.int64)  # average ranks are multiples of 1/2
    rb = np.rint(2 * stats.rankdata(b)).astype(np.int64)
    n = len(ra)
    top = int(np.sort(ra) @ np.sort(rb))
    dp = np.zeros((1 << n, top + 1), dtype=np.float64)
    dp[0, 0] = 1.0
    for mask in range(1 << n):
        row = dp[mask]
        if not row.any():
            continue
        i = bin(mask).count("1")
        if i == n:
            continue
        for j in range(n):
            if not mask >> j & 1:
                step = int(ra[i] * rb[j])
                dp[mask | 1 << j, step:] += row[: top + 1 - step]
    counts = dp[(1 << n) - 1]
    sums = np.arange(top + 1)
    observed = int(ra @ rb)
    total = counts.sum()
    above, below = counts[sums >= observed].sum() / total, counts[sums <= observed].sum() / total
    return float(min(1.0, 2 * min(above, below)))  # scipy.stats.permutation_test's two-sided p


def _bootstrap(a: np.ndarray, b: np.ndarray, method: str, n_resamples: int, seed: int,
               confidence: float) -> tuple[float, float, int]:
    def spearman(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
        # Spearman's rho is Pearson's r of the ranks: vectorised over all resamples at once
        return stats.pearsonr(stats.rankdata(u, axis=axis), stats.rankdata(v, axis=axis), axis=axis).statistic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = stats.bootstrap((a, b), spearman if method == "spearman" else kendall_tau_b, paired=True,
                               vectorized=True, n_resamples=n_resamples, method="percentile",
                               confidence_level=confidence, rng=np.random.default_rng(seed))
    dist = np.asarray(boot.bootstrap_distribution, dtype=float)
    valid = dist[np.isfinite(dist)]
    dropped = int(len(dist) - len(valid))
    if len(valid) < len(dist) / 2:
        return math.nan, math.nan, dropped
    alpha = (1 - confidence) / 2
    lo, hi = (float(v) for v in np.percentile(valid, [100 * alpha, 100 * (1 - alpha)]))
    # a bound at +-1 is produced by resamples that repeat points (ties): not shown
    return (lo if abs(lo) < 1 - 1e-9 else math.nan), (hi if abs(hi) < 1 - 1e-9 else math.nan), dropped


def correlation(x: Sequence[float], y: Sequence[float], method: str = "spearman", *, n_resamples: int = 2000,
                seed: int = 0, confidence: float = 0.95, ci: bool = True) -> Correlation:
    """``scipy.stats.spearmanr`` / ``kendalltau`` of the finite pairs with the Fisher-z interval, the
    exact permutation p for n <= 10 and a secondary bootstrap interval (``ci=False`` skips the bootstrap)."""
    func = {"spearman": stats.spearmanr, "kendall": stats.kendalltau}[method]
    a, b = _pairs(x, y)
    n = len(a)
    nan = math.nan
    if n < MIN_POINTS:
        return Correlation(method, n, nan, nan, nan, nan, note=f"{n} pairs: a correlation needs at least {MIN_POINTS}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = func(a, b)
    value = float(res.statistic)
    if not math.isfinite(value):
        return Correlation(method, n, nan, nan, nan, nan, note="one of the rankings is constant")
    exact = n <= EXACT_N
    p = exact_p(method, a, b) if exact else float(res.pvalue)
    lo, hi = fisher_ci(method, value, n, confidence)
    notes = []
    if n < FISHER_MIN[method]:
        notes.append(f"{n} pairs: no Fisher-z interval below {FISHER_MIN[method]}")
    elif abs(value) >= 1 - 1e-12:
        notes.append("perfect agreement: Fisher z is infinite, no interval")
    elif n < WIDE_N:
        notes.append(f"n = {n} < {WIDE_N}: the interval is wide because the standard error of Fisher z is "
                     f"{fisher_se(method, value, n):.2f} at this n")
    boot_lo = boot_hi = nan
    dropped = 0
    if ci and n >= MIN_POINTS:
        boot_lo, boot_hi, dropped = _bootstrap(a, b, method, n_resamples, seed, confidence)
    return Correlation(method, n, value, p, lo, hi, dropped, "; ".join(notes), boot_lo, boot_hi,
                       "exact permutation" if exact else "asymptotic")


def top_k_overlap(low: Sequence[float], high: Sequence[float], k: int) -> float:
    """Share of the ``k`` best by ``low`` that are among the ``k`` best by ``high`` (higher is better).

    Points where ``high`` is missing (not re-trained) count as not among the best by ``high``, so the
    cheap ranking's top k is taken over every point with a ``low`` value (the whole search)."""
    a, b = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    keep = np.isfinite(a)
    a, b = a[keep], b[keep]
    k = min(k, len(a), int(np.isfinite(b).sum()))
    if k == 0:
        return math.nan
    top_low = set(np.argsort(-a, kind="stable")[:k].tolist())
    top_high = set(np.argsort(-np.where(np.isfinite(b), b, -np.inf), kind="stable")[:k].tolist())
    return len(top_low & top_high) / k


def regret(low: Sequence[float], high: Sequence[float]) -> float:
    """Best ``high`` minus the ``high`` of the point ranked first by ``low`` (0: the cheap winner is best);
    NaN when the point ranked first by ``low`` has no ``high`` value (it was not re-trained)."""
    a, b = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    keep = np.isfinite(a)
    a, b = a[keep], b[keep]
    if len(a) == 0 or not np.isfinite(b).any():
        return math.nan
    return float(np.nanmax(b) - b[int(np.argmax(a))])


def not_retrained(low: Sequence[float], high: Sequence[float], k: int) -> int:
    """How many of the ``k`` best by ``low`` have no ``high`` value (were not re-trained)."""
    a, b = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    keep = np.isfinite(a)
    a, b = a[keep], b[keep]
    top = np.argsort(-a, kind="stable")[:k]
    return int((~np.isfinite(b[top])).sum())
