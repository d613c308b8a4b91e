"""The statistics of an ablation: one row per variant (summary.csv), shared by ``nasattn ablate`` and the report.

Per variant and metric (test accuracy, kappa): mean, std and 95% CI over its runs; the paired
difference to the base over the runs both have (key: seed, or (seed, split_seed)), its 95% CI,
Cohen's d_z and a paired t-test; the p-values of all variants x metrics adjusted together (Holm,
Benjamini-Hochberg or none). Per variant: McNemar's exact test against the base on each run's test
predictions, and pooled over runs (a second family, adjusted the same way).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Any

import pandas as pd

from nasattn.schema import NOT_FINISHED, PREDICTIONS_FILE
from nasattn.report.stats import MIN_SEEDS, Family, compare, mcnemar_from_predictions, pooled_mcnemar, summarize

METRICS: dict[str, tuple[float, float]] = {"test_accuracy": (0.0, 1.0), "kappa": (-1.0, 1.0)}
"""Metrics compared, with their range (CIs are clipped to it)."""

PredictionsOf = Callable[[str, Hashable], "pd.DataFrame | None"]


def run_key(row: Any, with_split: bool) -> Hashable:
    """The pairing key of a row: its seed, or (seed, split_seed) when splits vary."""
    seed = int(row["seed"])
    if not with_split:
        return seed
    split = row.get("split_seed")
    return (seed, None if split is None or (isinstance(split, float) and math.isnan(split)) else int(split))


def splits_vary(rows: pd.DataFrame) -> bool:
    """More than one split seed among the rows."""
    return "split_seed" in rows.columns and rows["split_seed"].dropna().nunique() > 1


def finished(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with a numeric test accuracy and no error status."""
    status = rows["status"].fillna("").astype(str).str.upper() if "status" in rows.columns else pd.Series("", index=rows.index)
    acc = pd.to_numeric(rows["test_accuracy"], errors="coerce") if "test_accuracy" in rows.columns else pd.Series(dtype=float)
    return rows[acc.notna() & ~status.isin(NOT_FINISHED)]


def _values(df: pd.DataFrame, col: str, with_split: bool) -> dict[Hashable, float]:
    out: dict[Hashable, float] = {}
    if col not in df.columns:
        return out
    for _, r in df.iterrows():
        v = pd.to_numeric(pd.Series([r.get(col)]), errors="coerce").iloc[0]
        if pd.notna(v):
            out[run_key(r, with_split)] = float(v)
    return out


def resolution(df: pd.DataFrame, metric: str) -> float | None:
    """``1 / n_test`` for the test accuracy when every row has the same test-set size, else None."""
    if metric != "test_accuracy" or "n_test" not in df.columns:
        return None
    n = pd.to_numeric(df["n_test"], errors="coerce").dropna().unique()
    return 1.0 / float(n[0]) if len(n) == 1 and n[0] > 0 else None


def variance_covered(rows: pd.DataFrame) -> str:
    """Which variance the CIs cover: training seeds only, or seeds and repeated splits."""
    ok = finished(rows)
    if splits_vary(ok):
        return (f"training seeds and {ok['split_seed'].dropna().nunique()} repeated test splits "
                "(the CIs include test-set sampling)")
    text = "training seeds on one fixed split (the CIs leave out test-set sampling variance"
    n = pd.to_numeric(ok.get("n_test", pd.Series(dtype=float)), errors="coerce").dropna()
    acc = pd.to_numeric(ok.get("test_accuracy", pd.Series(dtype=float)), errors="coerce").dropna()
    if len(n) and len(acc):
        p, size = float(acc.mean()), float(n.iloc[0])
        se = math.sqrt(p * (1 - p) / size)
        text += f"; binomial SE of the test accuracy at {p * 100:.1f}% on {int(size)} images: {se * 100:.2f} points"
    return text + "; add split_seeds to cover it)"


def analyze(
    rows: pd.DataFrame,
    variants: list[str],
    base: str | None,
    *,
    correction: str = "holm",
    predictions: PredictionsOf | None = None,
) -> list[dict[str, Any]]:
    """One dict per variant (the columns of summary.csv; see the module docstring)."""
    ok = finished(rows) if not rows.empty else rows
    with_split = splits_vary(ok) if not ok.empty else False
    base_df = ok[ok["variant"] == base] if base is not None and not ok.empty else ok.iloc[0:0]
    covers = variance_covered(rows) if not rows.empty else ""
    t_family, m_family = Family(correction), Family(correction)
    out: list[dict[str, Any]] = []
    for v in variants:
        d = ok[ok["variant"] == v] if not ok.empty else ok
        row: dict[str, Any] = {"variant": v, "n": len(d), "few_seeds": len(d) < MIN_SEEDS}
        for m, bounds in METRICS.items():
            s = summarize(list(_values(d, m, with_split).values()), bounds=bounds)
            row.update({f"{m}_mean": s.mean, f"{m}_std": s.std, f"{m}_ci_low": s.ci_low, f"{m}_ci_high": s.ci_high})
            c = None
            if v != base and base is not None:
                pair = pd.concat([base_df, d])
                c = compare(_values(base_df, m, with_split), _values(d, m, with_split),
                            resolution=resolution(pair, m), bounds=bounds)
                t_family.add((v, m), c.p_value)
            row.update({
                f"{m}_diff": c and c.diff, f"{m}_diff_ci_low": c and c.ci_low, f"{m}_diff_ci_high": c and c.ci_high,
                f"{m}_effect_dz": c and c.effect_size, f"{m}_n_pairs": c.n_pairs if c else None,
                f"{m}_test": c and c.test, f"{m}_p": c and c.p_value, f"{m}_p_adj": None,
                f"{m}_note": c.note if c else None,
            })
        row.update(mcnemar_b=None, mcnemar_c=None, mcnemar_n=None, mcnemar_runs=None, mcnemar_p=None,
                   mcnemar_p_adj=None, mcnemar_per_run=None)
        if v != base and base is not None and predictions is not None:
            keys = sorted(set(_values(base_df, "test_accuracy", with_split)) & set(_values(d, "test_accuracy", with_split)), key=str)
            per_run = []
            for k in keys:
                t = mcnemar_from_predictions(predictions(base, k), predictions(v, k))
                if t is not None:
                    per_run.append((k, t))
            pooled = pooled_mcnemar([t for _, t in per_run])
            if pooled is not None:
                row.update(mcnemar_b=pooled.b, mcnemar_c=pooled.c, mcnemar_n=pooled.n, mcnemar_runs=pooled.runs,
                           mcnemar_p=pooled.p_value,
                           mcnemar_per_run="; ".join(f"{_key(k)}: b={t.b} c={t.c} p={_p(t.p_value)}" for k, t in per_run))
                m_family.add(v, pooled.p_value)
        row.update(correction=correction, ci_covers=covers)
        out.append(row)
    adj_t, adj_m = t_family.adjusted(), m_family.adjusted()
    for row in out:
        for m in METRICS:
            if (row["variant"], m) in adj_t:
                row[f"{m}_p_adj"] = adj_t[(row["variant"], m)]
        if row["variant"] in adj_m:
            row["mcnemar_p_adj"] = adj_m[row["variant"]]
    return out


def _key(k: Hashable) -> str:
    return f"seed{k[0]}/split{k[1]}" if isinstance(k, tuple) else f"seed{k}"


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def predictions_from_run_dirs(rows: pd.DataFrame, locate: Callable[[Any], Any]) -> PredictionsOf:
    """A loader of predictions.csv by (variant, key) for :func:`analyze`; ``locate(run_dir)`` gives the
    folder (or None)."""
    from pathlib import Path

    ok = finished(rows)
    with_split = splits_vary(ok)
    where = {(r["variant"], run_key(r, with_split)): r.get("run_dir") for _, r in ok.iterrows()}
    cache: dict[tuple[str, Hashable], pd.DataFrame | None] = {}

    def load(variant: str, key: Hashable) -> pd.DataFrame | None:
        if (variant, key) not in cache:
            d = locate(where.get((variant, key)))
            f = Path(d) / PREDICTIONS_FILE if d is not None else None
            try:
                cache[(variant, key)] = pd.read_csv(f) if f is not None and f.is_file() else None
            except (OSError, ValueError):  # a half-written or foreign file: no McNemar for this run
                cache[(variant, key)] = None
        return cache[(variant, key)]

    return load
