"""Statistics over seeds: mean, std, a 95% t confidence interval, and a test of a difference to the base.

The test is Student's paired t-test over the seeds both samples share (when they share at least two
and the samples are exactly those seeds), otherwise Welch's unequal-variance t-test (scipy.stats).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """``n`` values: mean, sample std (ddof=1), and the 95% CI mean +- t(0.975, n-1) * std / sqrt(n)."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.ci_high is None or self.mean is None else self.ci_high - self.mean


@dataclass(frozen=True)
class Comparison:
    """``other - base``: difference of means, the test used (``paired t``, ``Welch t`` or None), p-value."""

    diff: float | None
    test: str | None
    p_value: float | None
    n_pairs: int = 0


def _finite(values: Sequence[float | None]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if math.isfinite(f):
            out.append(f)
    return out


def summarize(values: Sequence[float | None], confidence: float = 0.95) -> Summary:
    """Mean, std and t-interval of the finite values (None/NaN ignored). One value: no std, no CI."""
    from scipy import stats

    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return Summary(0, None, None, None, None)
    mean = sum(xs) / n
    if n == 1:
        return Summary(1, mean, None, None, None)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def compare(base: Mapping[int, float | None], other: Mapping[int, float | None]) -> Comparison:
    """Compare per-seed values ``{seed: value}`` of a variant with the base's.

    Paired t-test when both have the same seeds (at least two); otherwise Welch's t-test on all the
    values (each side needs two). A p-value is None when the test is undefined (e.g. zero variance).
    """
    from scipy import stats

    b = {int(k): float(v) for k, v in base.items() if v is not None and math.isfinite(float(v))}
    o = {int(k): float(v) for k, v in other.items() if v is not None and math.isfinite(float(v))}
    if not b or not o:
        return Comparison(None, None, None)
    diff = sum(o.values()) / len(o) - sum(b.values()) / len(b)
    if set(b) == set(o) and len(b) >= 2:
        seeds = sorted(b)
        res = stats.ttest_rel([o[s] for s in seeds], [b[s] for s in seeds])
        p = float(res.pvalue)
        return Comparison(diff, "paired t", p if math.isfinite(p) else None, len(seeds))
    if len(b) >= 2 and len(o) >= 2:
        res = stats.ttest_ind(list(o.values()), list(b.values()), equal_var=False)
        p = float(res.pvalue)
        return Comparison(diff, "Welch t", p if math.isfinite(p) else None)
    return Comparison(diff, None, None)
