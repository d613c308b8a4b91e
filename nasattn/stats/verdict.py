"""Sentences written from statistics rows: the verdict of a comparison and of a rediscovery.

A verdict rests on the primary metric only: its paired difference over runs, that difference's t CI
and its p-value adjusted over the variants (the family of the primary metric).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ALPHA = 0.05
POINTS = {"test_accuracy", "val_accuracy", "macro_f1", "min_class_accuracy"}  # shown x100 as points


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def amount(v: float, metric: str, signed: bool = False) -> str:
    """A difference in the metric's unit: points for accuracies, 3 decimals otherwise."""
    if metric in POINTS:
        return f"{v * 100:{'+' if signed else ''}.2f} points"
    return f"{v:{'+' if signed else ''}.3f}"


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def verdict(row: Mapping[str, Any], metric: str = "test_accuracy", *, alpha: float = ALPHA, unit: str = "runs") -> str:
    """One sentence for a summary row's ``metric`` columns (``{metric}_diff``, ``_diff_ci_low/high``,
    ``_n_pairs``, ``_p_adj``, ``_detectable``, ``_sd``, ``_better``, ``_note``):

    "better by X (95% CI a to b, adjusted p = q; k of n runs better)", "worse by ...",
    "not distinguishable with n runs (detectable: >= Y)", or "not testable with n run(s) ...".
    Empty for a row without a comparison (the base).
    """
    diff = _num(row.get(f"{metric}_diff"))
    if diff is None:
        return ""
    n = int(_num(row.get(f"{metric}_n_pairs")) or 0)
    if n < 3:
        return f"not testable with {n} {unit[:-1] if n == 1 else unit} (a test needs 3; observed {amount(diff, metric, True)})"
    p_adj = _num(row.get(f"{metric}_p_adj"))
    lo, hi = _num(row.get(f"{metric}_diff_ci_low")), _num(row.get(f"{metric}_diff_ci_high"))
    better = _num(row.get(f"{metric}_better"))
    count = f"; {int(better)} of {n} {unit} better" if better is not None else ""
    if p_adj is not None and p_adj < alpha and lo is not None and hi is not None:
        word = "better" if diff > 0 else "worse"
        return (f"{word} by {amount(abs(diff), metric)} (95% CI {amount(lo, metric, True)} to "
                f"{amount(hi, metric, True)}, adjusted p = {_p(p_adj)}{count})")
    if _num(row.get(f"{metric}_sd")) == 0:
        perm = _num(row.get(f"{metric}_perm_p"))
        extra = "" if perm is None else f"; exact sign-flip p = {_p(perm)}"
        return (f"not distinguishable with {n} {unit}: every run differs by {amount(diff, metric, True)} "
                f"(SD 0, no t-test{extra})")
    det = _num(row.get(f"{metric}_detectable"))
    det_text = f"detectable: >= {amount(det, metric)}" if det is not None else "no power estimate"
    p_text = "" if p_adj is None else f", adjusted p = {_p(p_adj)}"
    return f"not distinguishable with {n} {unit} ({det_text}; observed {amount(diff, metric, True)}{p_text})"


def significant(row: Mapping[str, Any], metric: str = "test_accuracy", alpha: float = ALPHA) -> bool:
    """The row's corrected test supports a difference (adjusted p < alpha with at least 3 runs)."""
    p_adj = _num(row.get(f"{metric}_p_adj"))
    return p_adj is not None and p_adj < alpha and int(_num(row.get(f"{metric}_n_pairs")) or 0) >= 3


def rediscovery_verdict(best_trial: int | None, row: Mapping[str, Any] | None, metric: str = "test_accuracy",
                        alpha: float = ALPHA) -> str:
    """Did the search rediscover the preset? ``best_trial``: the trial ranked above the preset (None: the
    preset itself ranks first); ``row``: that trial's paired comparison against the preset (difference =
    trial - preset) with the columns :func:`verdict` reads.

    One of "rediscovered", "beaten by trial N" (only when the corrected test supports it), "not
    distinguishable from trial N at this budget", "cannot tell" (no testable comparison).
    """
    if best_trial is None:
        return "rediscovered"
    if row is None or int(_num(row.get(f"{metric}_n_pairs")) or 0) < 3:
        return "cannot tell"
    diff = _num(row.get(f"{metric}_diff"))
    if significant(row, metric, alpha) and diff is not None and diff > 0:
        return f"beaten by trial {best_trial}"
    if significant(row, metric, alpha):
        return "rediscovered"
    return f"not distinguishable from trial {best_trial} at this budget"
