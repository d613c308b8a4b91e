"""The paired statistics of a path's steps: the one adapter between the path and the statistics package."""

from __future__ import annotations

from typing import Any

import pandas as pd

from nasattn.stats import Family, analyze, verdict


def paired_vs_previous(rows: pd.DataFrame, chain: list[str], correction: str = "holm") -> list[dict[str, Any]]:
    """One row per point of ``chain`` (FROM first): its mean and CI over the runs, and for every later point
    the paired difference to the point before it over the runs (CI, d_z, paired t p, exact sign-flip p,
    sign count, detectable difference), the p-values adjusted over the steps (``test_accuracy_p_adj``,
    ``kappa_p_adj``, ...: one family per metric; the verdict rests on test accuracy's) and the step's
    ``verdict`` sentence written from them.

    ``rows``: ablation.csv-style rows (variant = point, seed, status, metrics). This is the single call
    into the run-level statistics (:func:`nasattn.stats.analyze`, pair by pair).
    """
    out: list[dict[str, Any]] = []
    families: dict[str, Family] = {}
    for i, point in enumerate(chain):
        prev = chain[i - 1] if i else None
        pair = rows[rows["variant"].isin([point] if prev is None else [prev, point])]
        row = analyze(pair, [point], prev, correction="none")[0]
        row["previous"] = prev
        for key in [k for k in row if k.endswith("_p") and not k.endswith(("_perm_p", "_sign_p"))]:
            families.setdefault(key, Family(correction)).add(point, row[key])
        out.append(row)
    for key, fam in families.items():
        adj = fam.adjusted()
        for row in out:
            if row["variant"] in adj:
                row[f"{key}_adj"] = adj[row["variant"]]
    for row in out:
        row["correction"] = f"{correction} over the {len(chain) - 1} steps"
        row["verdict"] = verdict(row) if row["previous"] is not None else ""
    return out
