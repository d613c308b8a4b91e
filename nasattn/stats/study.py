"""The statistics of an ablation: one row per variant (summary.csv), shared by ``nasattn ablate``, fidelity and the report.

Per variant and metric (test accuracy, kappa, macro-F1, ECE): mean, std and 95% t CI over its runs;
the paired difference to the base over the runs both have (key: seed, or (seed, split_seed)) with its
95% t CI, Cohen's d_z and a paired t-test (:func:`nasattn.stats.paired.compare`).

Families: the primary metric (test accuracy unless the study names another) is adjusted over the
variants (Holm, Benjamini-Hochberg or none) and is the only metric in the verdict. Every other metric
is adjusted over the variants in its own family and reported as secondary.

For the primary metric each row also has the exact sign-flip p, the sign count, P(variant > base)
with its CI, the resolution (detectable difference, runs needed), the two-level bootstrap CI from the
runs' test predictions (:mod:`nasattn.stats.bootstrap`, when every paired run has them) and the
verdict sentence (:func:`nasattn.stats.verdict.verdict`). McNemar is per run only
(``mcnemar_per_run``), labelled as a statement about two trained models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import pandas as pd

from nasattn.stats.bootstrap import two_level_ci
from nasattn.stats.mcnemar import MODEL_LEVEL, mcnemar_exact, paired_correct
from nasattn.stats.multitest import Family
from nasattn.schema import NOT_FINISHED, PREDICTIONS_FILE
from nasattn.stats.paired import MIN_SEEDS, Comparison, compare, summarize
from nasattn.stats.verdict import verdict

METRICS: dict[str, tuple[float, float]] = {"test_accuracy": (0.0, 1.0), "kappa": (-1.0, 1.0),
                                           "macro_f1": (0.0, 1.0), "ece": (0.0, 1.0)}
"""Metrics compared, with their range (CIs are clipped to it)."""
PRIMARY_METRICS = ("test_accuracy", "kappa", "macro_f1")
"""Metrics a study may name as its primary (the verdict's) metric; higher is better for each."""
DEFAULT_PRIMARY = "test_accuracy"

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
    """Which variance the t CIs cover: training seeds only, or seeds and repeated splits."""
    ok = finished(rows)
    if splits_vary(ok):
        return (f"training seeds and {ok['split_seed'].dropna().nunique()} repeated test splits "
                "(the CIs include test-set sampling)")
    text = "training seeds on one fixed split (the t CIs leave out test-set sampling variance"
    n = pd.to_numeric(ok.get("n_test", pd.Series(dtype=float)), errors="coerce").dropna()
    acc = pd.to_numeric(ok.get("test_accuracy", pd.Series(dtype=float)), errors="coerce").dropna()
    if len(n) and len(acc):
        p, size = float(acc.mean()), float(n.iloc[0])
        se = math.sqrt(p * (1 - p) / size)
        text += f"; binomial SE of the test accuracy at {p * 100:.1f}% on {int(size)} images: {se * 100:.2f} points"
    return text + "; the two-level bootstrap CI adds it, or add split_seeds)"


def comparison_columns(m: str, c: Comparison | None) -> dict[str, Any]:
    """The summary.csv columns of one metric's comparison (all None for the base)."""
    r = c.resolution if c else None
    imp = c.improvement if c else None
    signs = c.signs if c else None
    return {
        f"{m}_diff": c and c.diff, f"{m}_diff_ci_low": c and c.ci_low, f"{m}_diff_ci_high": c and c.ci_high,
        f"{m}_effect_dz": c and c.effect_size, f"{m}_sd": c and c.sd, f"{m}_n_pairs": c.n_pairs if c else None,
        f"{m}_test": c and c.test, f"{m}_p": c and c.p_value, f"{m}_p_adj": None,
        f"{m}_perm_p": c and c.perm_p, f"{m}_better": signs and signs.better, f"{m}_worse": signs and signs.worse,
        f"{m}_sign_p": signs and signs.p_value,
        f"{m}_p_improve": imp and imp.value, f"{m}_p_improve_ci_low": imp and imp.ci_low,
        f"{m}_p_improve_ci_high": imp and imp.ci_high,
        f"{m}_detectable": r and r.detectable, f"{m}_runs_needed": r and r.runs_needed,
        f"{m}_note": "; ".join(x for x in ((c.note if c else ""), (r.note if r else "")) if x) or None,
    }


def mcnemar_per_run(base: str, variant: str, keys: list[Hashable], predictions: PredictionsOf) -> str | None:
    """McNemar per run as text (``seed0: b=.. c=.. p=..``), or None when no run has predictions."""
    parts = []
    for k in keys:
        pair = paired_correct(predictions(base, k), predictions(variant, k))
        if pair is not None:
            t = mcnemar_exact(*pair)
            parts.append(f"{_key(k)}: b={t.b} c={t.c} p={_p(t.p_value)}")
    return f"{MODEL_LEVEL}: " + "; ".join(parts) if parts else None


def bootstrap_columns(base: str, variant: str, keys: list[Hashable], predictions: PredictionsOf | None,
                      metric: str) -> dict[str, Any]:
    """The two-level bootstrap CI of the test-accuracy difference, or a note saying why there is none."""
    out: dict[str, Any] = {"boot_ci_low": None, "boot_ci_high": None, "boot_note": None}
    if metric != "test_accuracy":
        out["boot_note"] = f"the two-level bootstrap covers test accuracy only (primary metric: {metric})"
        return out
    pairs = [paired_correct(predictions(base, k), predictions(variant, k)) for k in keys] if predictions else []
    if not keys or any(p is None for p in pairs) or len({len(p[0]) for p in pairs if p}) != 1:
        out["boot_note"] = f"no two-level bootstrap: not every paired run has the same test images in {PREDICTIONS_FILE}"
        return out
    ci = two_level_ci(np.stack([p[0] for p in pairs if p]), np.stack([p[1] for p in pairs if p]))
    out.update(boot_ci_low=ci.ci_low, boot_ci_high=ci.ci_high)
    return out


def analyze(
    rows: pd.DataFrame,
    variants: list[str],
    base: str | None,
    *,
    correction: str = "holm",
    predictions: PredictionsOf | None = None,
    primary: str = DEFAULT_PRIMARY,
) -> list[dict[str, Any]]:
    """One dict per variant (the columns of summary.csv; see the module docstring)."""
    if primary not in PRIMARY_METRICS:
        raise ValueError(f"primary metric {primary!r} is not one of {', '.join(PRIMARY_METRICS)}")
    ok = finished(rows) if not rows.empty else rows
    with_split = splits_vary(ok) if not ok.empty else False
    base_df = ok[ok["variant"] == base] if base is not None and not ok.empty else ok.iloc[0:0]
    covers = variance_covered(rows) if not rows.empty else ""
    families = {m: Family(correction) for m in METRICS}
    out: list[dict[str, Any]] = []
    for v in variants:
        d = ok[ok["variant"] == v] if not ok.empty else ok
        row: dict[str, Any] = {"variant": v, "n": len(d), "few_seeds": len(d) < MIN_SEEDS, "primary_metric": primary}
        keys: list[Hashable] = []
        for m, bounds in METRICS.items():
            s = summarize(list(_values(d, m, with_split).values()), bounds=bounds)
            row.update({f"{m}_mean": s.mean, f"{m}_std": s.std, f"{m}_ci_low": s.ci_low, f"{m}_ci_high": s.ci_high})
            c = None
            if v != base and base is not None:
                c = compare(_values(base_df, m, with_split), _values(d, m, with_split),
                            resolution=resolution(pd.concat([base_df, d]), m), bounds=bounds)
                families[m].add(v, c.p_value)
                keys = list(c.paired) if m == primary else keys
            row.update(comparison_columns(m, c))
        row.update(mcnemar_per_run=None, boot_ci_low=None, boot_ci_high=None, boot_note=None)
        if v != base and base is not None:
            row.update(bootstrap_columns(base, v, keys, predictions, primary))
            if predictions is not None:
                row["mcnemar_per_run"] = mcnemar_per_run(base, v, keys, predictions)
        row.update(correction=correction, ci_covers=covers)
        out.append(row)
    adjusted = {m: f.adjusted() for m, f in families.items()}
    for row in out:
        for m in METRICS:
            if row["variant"] in adjusted[m]:
                row[f"{m}_p_adj"] = adjusted[m][row["variant"]]
        row["verdict"] = verdict(row, primary) if row["variant"] != base else ""
    return out


def _key(k: Hashable) -> str:
    return f"seed{k[0]}/split{k[1]}" if isinstance(k, tuple) else f"seed{k}"


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"
