"""Summaries over runs and the paired comparison of a variant with its base over runs.

* :func:`summarize`: mean, sample std and a Student-t 95% CI of one variant's values (clipped to the
  metric's range).
* :func:`compare`: the paired difference ``other - base`` over the run keys both have (a seed, or a
  ``(seed, split_seed)`` pair): mean difference, its t CI, Cohen's d_z and a paired t-test
  (``scipy.stats.ttest_1samp`` of the differences, i.e. ``ttest_rel``). Values are rounded to the
  metric's resolution first (``1 / n_test`` for an accuracy: differences of whole test images), so a
  constant difference has exactly zero variance and gets no t-test, with the reason in ``note``. Keys
  only one side has are left out and named. With at least 3 pairs it adds the exact sign-flip
  permutation p, the sign count, the resolution (detectable difference, runs needed) and P(variant >
  base) (:mod:`nasattn.stats.runs`); with fewer the comparison is "not testable" and has no p.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from nasattn.stats.runs import MIN_RUNS, Probability, Resolution, SignCount, improvement_probability, resolution, \
    sign_count, sign_flip_p

MIN_SEEDS = MIN_RUNS  # results from fewer runs are marked


@dataclass(frozen=True)
class Summary:
    """``n`` values: mean, sample std (ddof=1), and the 95% CI mean +- t(0.975, n-1) * std / sqrt(n),
    clipped to ``bounds`` when given."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.ci_high is None or self.mean is None else self.ci_high - self.mean

    @property
    def few(self) -> bool:
        """Fewer than :data:`MIN_SEEDS` values."""
        return self.n < MIN_SEEDS


@dataclass(frozen=True)
class Comparison:
    """``other - base`` paired over the keys both have.

    ``diff``: mean of the paired differences; ``ci_low``/``ci_high``: its t CI (clipped to
    ``bounds``); ``effect_size``: Cohen's d_z (mean / sd of the differences); ``test``: ``"paired t"``
    or None (``note`` says why); ``missing``: keys that only one side has (not used).
    """

    diff: float | None
    test: str | None
    p_value: float | None
    n_pairs: int = 0
    sd: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    effect_size: float | None = None
    t: float | None = None
    df: int | None = None
    note: str = ""
    paired: tuple[Hashable, ...] = ()
    missing: tuple[Hashable, ...] = ()
    perm_p: float | None = None
    signs: SignCount | None = None
    resolution: Resolution | None = None
    improvement: Probability | None = None
    differences: tuple[float, ...] = ()

    @property
    def testable(self) -> bool:
        """At least :data:`MIN_RUNS` pairs."""
        return self.n_pairs >= MIN_RUNS


def _finite(values: Sequence[float | None]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if math.isfinite(f):
            out.append(f)
    return out


def _clip(x: float | None, bounds: tuple[float, float] | None) -> float | None:
    if x is None or bounds is None:
        return x
    return min(max(x, bounds[0]), bounds[1])


def summarize(values: Sequence[float | None], confidence: float = 0.95,
              bounds: tuple[float, float] | None = None) -> Summary:
    """Mean, std and t-interval of the finite values (None/NaN ignored). One value: no std, no CI."""
    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return Summary(0, None, None, None, None)
    mean = float(np.mean(xs))
    if n == 1:
        return Summary(1, mean, None, None, None)
    std = float(np.std(xs, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, _clip(mean - half, bounds), _clip(mean + half, bounds))


def _key_text(k: Hashable) -> str:
    if isinstance(k, tuple):
        return "seed " + "/split ".join(str(x) for x in k)
    return f"seed {k}"


def compare(
    base: Mapping[Hashable, float | None],
    other: Mapping[Hashable, float | None],
    *,
    resolution: float | None = None,
    bounds: tuple[float, float] | None = None,
    confidence: float = 0.95,
) -> Comparison:
    """Paired comparison of per-run values ``{key: value}`` of a variant with the base's.

    ``resolution``: the smallest step of the metric (``1 / n_test`` for an accuracy); values are
    rounded to whole steps so differences are exact (without it, differences are rounded to 12
    decimals). ``bounds``: the metric's range; the difference's CI is clipped to
    ``[lo - hi, hi - lo]``. Fewer than 3 pairs: "not testable" (no test, no p). Zero variance of the
    differences: no t-test (the sign-flip p, sign count and P(improvement) remain).
    """
    def clean(m: Mapping[Hashable, float | None]) -> dict[Hashable, float]:
        return {k: float(v) for k, v in m.items() if v is not None and math.isfinite(float(v))}

    b, o = clean(base), clean(other)
    keys = sorted(set(b) & set(o), key=str)
    missing = tuple(sorted(set(b) ^ set(o), key=str))
    note = ""
    if missing:
        only_b = [k for k in missing if k in b]
        only_o = [k for k in missing if k in o]
        parts = [f"the variant lacks {', '.join(map(_key_text, only_b))}" if only_b else "",
                 f"the base lacks {', '.join(map(_key_text, only_o))}" if only_o else ""]
        note = f"paired on the {len(keys)} run(s) both have ({'; '.join(p for p in parts if p)})"
    if not keys:
        return Comparison(None, None, None, 0, note=note or "no run in common", missing=missing)

    if resolution:
        d_steps = np.array([round(o[k] / resolution) - round(b[k] / resolution) for k in keys], dtype=np.int64)
        d = d_steps * resolution
        zero_var = bool(np.all(d_steps == d_steps[0]))
    else:
        d = np.round(np.array([o[k] - b[k] for k in keys]), 12)
        zero_var = bool(np.all(d == d[0]))
    n = len(keys)
    mean = float(d.mean())
    diff_bounds = None if bounds is None else (bounds[0] - bounds[1], bounds[1] - bounds[0])

    def with_note(extra: str) -> str:
        return "; ".join(x for x in (note, extra) if x)

    diffs = tuple(float(x) for x in d)
    if n < MIN_RUNS:
        return Comparison(mean, None, None, n, note=with_note(f"not testable: {n} run(s), a test needs {MIN_RUNS}"),
                          paired=tuple(keys), missing=missing, differences=diffs,
                          sd=float(d.std(ddof=1)) if n > 1 else None)
    extra = {"perm_p": sign_flip_p(d), "signs": sign_count(d), "improvement": improvement_probability(d),
             "differences": diffs}
    if zero_var:
        step = f" ({round(float(d[0]) / resolution):+d} test images)" if resolution else ""
        return Comparison(mean, None, None, n, sd=0.0, note=with_note(
            f"every pair differs by the same amount {float(d[0]):+.6g}{step}: zero variance, no t-test"),
            paired=tuple(keys), missing=missing, resolution=_resolution(mean, 0.0, n), **extra)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    res = stats.ttest_1samp(d, 0.0)  # the paired t-test on the (rounded) differences
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    p = float(res.pvalue)
    return Comparison(
        diff=mean, test="paired t", p_value=p if math.isfinite(p) else None, n_pairs=n, sd=sd,
        ci_low=_clip(mean - half, diff_bounds), ci_high=_clip(mean + half, diff_bounds),
        effect_size=mean / sd, t=mean / se, df=n - 1, note=with_note(""), paired=tuple(keys), missing=missing,
        resolution=_resolution(mean, sd, n), **extra,
    )


def _resolution(diff: float, sd: float, n: int) -> Resolution:
    return resolution(diff, sd, n)
