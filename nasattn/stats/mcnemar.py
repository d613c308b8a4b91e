"""McNemar's exact test of two trained models on the same test images, one run at a time.

It answers "do these two trained models disagree on these images in one direction?", a question about
two sets of weights, never about two architectures: the runs are not pooled (the same test images recur
across seeds), and no McNemar p enters a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import mcnemar

MODEL_LEVEL = "these two trained models disagree on these images"
"""What a McNemar p is about (shown beside it)."""


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test: ``b`` images only the base classifies correctly, ``c`` only the other;
    ``n`` images compared; ``p_value`` two-sided (None when there is no discordant image)."""

    b: int
    c: int
    n: int
    p_value: float | None


def mcnemar_exact(base_correct: Sequence[bool], other_correct: Sequence[bool]) -> McNemar:
    """McNemar's exact test on two aligned boolean vectors (the same test images in the same order)."""
    bc, oc = np.asarray(base_correct, dtype=bool), np.asarray(other_correct, dtype=bool)
    if bc.shape != oc.shape:
        raise ValueError(f"McNemar needs the same test images: {bc.size} vs {oc.size} predictions")
    b = int(np.sum(bc & ~oc))
    c = int(np.sum(~bc & oc))
    table = [[int(np.sum(bc & oc)), b], [c, int(np.sum(~bc & ~oc))]]
    p = None if b + c == 0 else float(mcnemar(table, exact=True).pvalue)
    return McNemar(b, c, int(bc.size), p)


def correct_by_image(df: object) -> pd.Series | None:
    """A predictions.csv table (``index`` and ``correct`` or ``label``/``pred``) as a boolean Series by image
    index, sorted; None when the columns are missing or an index repeats."""
    cols = set(getattr(df, "columns", []))
    if "index" not in cols or not ("correct" in cols or {"label", "pred"} <= cols):
        return None
    assert isinstance(df, pd.DataFrame)
    if "correct" in df.columns:
        c = df["correct"].astype(str).str.lower().isin(("true", "1", "1.0"))
    else:
        c = df["label"] == df["pred"]
    s = pd.Series(c.to_numpy(), index=df["index"].to_numpy())
    return None if s.index.has_duplicates else s.sort_index()


def paired_correct(base: object, other: object) -> tuple[np.ndarray, np.ndarray] | None:
    """The two models' correctness on the same test images, aligned by image; None when they differ."""
    cb, co = correct_by_image(base), correct_by_image(other)
    if cb is None or co is None or set(cb.index) != set(co.index):
        return None
    return cb.to_numpy(), co.reindex(cb.index).to_numpy()


def mcnemar_from_predictions(base: object, other: object) -> McNemar | None:
    """McNemar's exact test from two predictions.csv tables matched on ``index``; None when they do not
    cover the same test images."""
    pair = paired_correct(base, other)
    return None if pair is None else mcnemar_exact(*pair)
