"""Statistics over seeds and test predictions: summaries, paired comparisons, McNemar, multiple testing.

* :func:`summarize`: mean, sample std and a Student-t 95% CI of one variant's values (clipped to the
  metric's range).
* :func:`compare`: the paired difference ``other - base`` over the run keys both have (a seed, or a
  ``(seed, split_seed)`` pair): mean difference, its t CI, Cohen's d_z and a paired t-test
  (``scipy.stats.ttest_1samp`` of the differences, i.e. ``ttest_rel``). Values are rounded to the
  metric's resolution first (``1 / n_test`` for an accuracy: differences of whole test images), so a
  constant difference has exactly zero variance and gets no t-test, with the reason in ``note``. Keys
  only one side has are left out and named.
* :func:`mcnemar_exact`: McNemar's exact test of two classifiers on the same test images
  (``statsmodels.stats.contingency_tables.mcnemar``); :func:`pooled_mcnemar` sums the discordant
  pairs over runs and applies the exact binomial test to the totals.
* :func:`adjust_pvalues`: Holm or Benjamini-Hochberg over a family of p-values
  (``statsmodels.stats.multitest.multipletests``); ``None`` entries stay ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

CORRECTIONS: dict[str, str | None] = {"holm": "holm", "bh": "fdr_bh", "none": None}
MIN_SEEDS = 3  # results from fewer runs are marked


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


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test: ``b`` images only the base classifies correctly, ``c`` only the other;
    ``n`` images compared; ``p_value`` two-sided (None when there is no discordant image)."""

    b: int
    c: int
    n: int
    p_value: float | None
    runs: int = 1


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
    from scipy import stats

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
    ``[lo - hi, hi - lo]``. Needs two pairs and non-zero variance of the differences for a t-test.
    """
    from scipy import stats

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

    if n < 2:
        return Comparison(mean, None, None, n, note=with_note("one pair: no t-test"), paired=tuple(keys), missing=missing)
    if zero_var:
        step = f" ({round(float(d[0]) / resolution):+d} test images)" if resolution else ""
        return Comparison(mean, None, None, n, sd=0.0, note=with_note(
            f"every pair differs by the same amount {float(d[0]):+.6g}{step}: zero variance, no t-test"),
            paired=tuple(keys), missing=missing)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    res = stats.ttest_1samp(d, 0.0)  # the paired t-test on the (rounded) differences
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    p = float(res.pvalue)
    few = f"only {n} pairs: {n - 1} degree(s) of freedom, read the p-value with care" if n < MIN_SEEDS else ""
    return Comparison(
        diff=mean, test="paired t", p_value=p if math.isfinite(p) else None, n_pairs=n, sd=sd,
        ci_low=_clip(mean - half, diff_bounds), ci_high=_clip(mean + half, diff_bounds),
        effect_size=mean / sd, t=mean / se, df=n - 1, note=with_note(few), paired=tuple(keys), missing=missing,
    )


def adjust_pvalues(pvalues: Sequence[float | None], correction: str = "holm") -> list[float | None]:
    """Adjusted p-values (``holm``, ``bh`` or ``none``) over the non-None entries, in input order."""
    from statsmodels.stats.multitest import multipletests

    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; allowed: {', '.join(CORRECTIONS)}")
    method = CORRECTIONS[correction]
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(float(p))]
    out: list[float | None] = [None] * len(pvalues)
    if not idx:
        return out
    raw = [float(pvalues[i]) for i in idx]  # type: ignore[arg-type]
    adj = raw if method is None else multipletests(raw, method=method)[1]
    for i, p in zip(idx, adj):
        out[i] = float(p)
    return out


def mcnemar_exact(base_correct: Sequence[bool], other_correct: Sequence[bool]) -> McNemar:
    """McNemar's exact test on two aligned boolean vectors (the same test images in the same order)."""
    from statsmodels.stats.contingency_tables import mcnemar

    bc, oc = np.asarray(base_correct, dtype=bool), np.asarray(other_correct, dtype=bool)
    if bc.shape != oc.shape:
        raise ValueError(f"McNemar needs the same test images: {bc.size} vs {oc.size} predictions")
    b = int(np.sum(bc & ~oc))
    c = int(np.sum(~bc & oc))
    table = [[int(np.sum(bc & oc)), b], [c, int(np.sum(~bc & ~oc))]]
    p = None if b + c == 0 else float(mcnemar(table, exact=True).pvalue)
    return McNemar(b, c, int(bc.size), p)


def mcnemar_from_predictions(base: object, other: object) -> McNemar | None:
    """McNemar's exact test from two predictions.csv tables (columns ``index``, ``correct`` or
    ``label``/``pred``), matched on ``index``; None when they do not cover the same test images."""
    import pandas as pd

    def correct(df: pd.DataFrame) -> pd.Series:
        if "correct" in df.columns:
            c = df["correct"].astype(str).str.lower().isin(("true", "1", "1.0"))
        else:
            c = df["label"] == df["pred"]
        return pd.Series(c.to_numpy(), index=df["index"].to_numpy())

    def usable(df: object) -> bool:
        cols = set(getattr(df, "columns", []))
        return "index" in cols and ("correct" in cols or {"label", "pred"} <= cols)

    if not usable(base) or not usable(other):
        return None
    cb, co = correct(base), correct(other)  # type: ignore[arg-type]
    if cb.index.has_duplicates or co.index.has_duplicates or set(cb.index) != set(co.index):
        return None
    return mcnemar_exact(cb.sort_index().to_numpy(), co.reindex(cb.sort_index().index).to_numpy())


def pooled_mcnemar(tests: Sequence[McNemar]) -> McNemar | None:
    """Pooled over runs: discordant counts summed, exact two-sided binomial test (p = 1/2) on the totals.

    Each run is a stratum; the runs are treated as independent, which repeated test images (one split,
    several seeds) make optimistic.
    """
    from scipy.stats import binomtest

    tests = [t for t in tests if t is not None]
    if not tests:
        return None
    b, c = sum(t.b for t in tests), sum(t.c for t in tests)
    p = None if b + c == 0 else float(binomtest(min(b, c), b + c, 0.5).pvalue)
    return McNemar(b, c, sum(t.n for t in tests), p, runs=len(tests))


@dataclass
class Family:
    """p-values collected under labels, adjusted together by :meth:`adjusted`."""

    correction: str = "holm"
    labels: list[Hashable] = field(default_factory=list)
    pvalues: list[float | None] = field(default_factory=list)

    def add(self, label: Hashable, p: float | None) -> None:
        self.labels.append(label)
        self.pvalues.append(p)

    def adjusted(self) -> dict[Hashable, float | None]:
        return dict(zip(self.labels, adjust_pvalues(self.pvalues, self.correction)))
