"""The report of an ablation folder (ablation.csv: one row per variant and seed; optional ablation.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nasattn.report import figures
from nasattn.report.env import environment
from nasattn.report.html import Page, best_cells, fmt_count, fmt_num, fmt_pct, is_number
from nasattn.report.predictions import predictions_from_run_dirs
from nasattn.schema import ABLATION_CSV, ABLATION_JSON, METRICS_FILE, NOT_FINISHED
from nasattn.stats import DEFAULT_PRIMARY, MODEL_LEVEL, PRIMARY_METRICS, analyze, summarize
from nasattn.presets import get_preset, list_presets
from nasattn.report.run import class_names

DECAY_ONLY = figures.DECAY_ONLY
PAPER_LABELS = {"test_accuracy": "test accuracy", "kappa": "Cohen's kappa", "alpha": "mean alpha",
                "min_class_accuracy": "min class accuracy (paper: every class above)", "confidence_gap": "confidence gap"}


def read_ablation(folder: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """ablation.csv (empty frame when missing) and ablation.json (``{}`` when missing or broken)."""
    rows = pd.DataFrame()
    if (folder / ABLATION_CSV).is_file():
        try:
            rows = pd.read_csv(folder / ABLATION_CSV)
        except pd.errors.EmptyDataError:
            rows = pd.DataFrame()
    meta: dict[str, Any] = {}
    if (folder / ABLATION_JSON).is_file():
        try:
            meta = json.loads((folder / ABLATION_JSON).read_text(encoding="utf-8")) or {}
        except (ValueError, OSError):
            meta = {}
    for col in ("variant", "seed", "status", "run_dir", "test_accuracy"):
        if col not in rows.columns:
            rows[col] = None
    rows["variant"] = rows["variant"].astype(str)
    return rows, meta if isinstance(meta, dict) else {}


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows that finished: a numeric test accuracy and no error status."""
    status = rows["status"].fillna("").astype(str).str.upper()
    acc = pd.to_numeric(rows["test_accuracy"], errors="coerce")
    return rows[acc.notna() & ~status.isin(NOT_FINISHED)]


def variants_of(rows: pd.DataFrame) -> list[str]:
    """Variant names in their first-appearance order."""
    return list(dict.fromkeys(rows["variant"].tolist()))


def base_of(variants: list[str], meta: dict[str, Any]) -> str | None:
    """The base variant: ablation.json's ``base``, else ``baseline`` if present, else the first."""
    base = meta.get("base")
    if base in variants:
        return base
    return "baseline" if "baseline" in variants else (variants[0] if variants else None)


def resolve_run_dir(folder: Path, run_dir: Any) -> Path | None:
    """A row's run folder (absolute, relative to the ablation folder, or to the working directory)."""
    if not isinstance(run_dir, str) or not run_dir.strip():
        return None
    p = Path(run_dir)
    for cand in ([p] if p.is_absolute() else [folder / p, p, folder / p.name]):
        if (cand / METRICS_FILE).is_file():
            return cand
    return None


def load_runs(folder: Path, rows: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """``{variant: [read_run(...) per finished seed]}``; unreadable run folders are skipped."""
    from nasattn.engine import read_run  # lazy: keeps torch out of reading a report

    runs: dict[str, list[dict[str, Any]]] = {}
    for _, r in rows.iterrows():
        d = resolve_run_dir(folder, r.get("run_dir"))
        if d is None:
            continue
        try:
            runs.setdefault(r["variant"], []).append(read_run(d))
        except Exception:  # noqa: BLE001 - a half-written run folder
            continue
    return runs


def _mean(df: pd.DataFrame, col: str) -> float | None:
    if col not in df.columns:
        return None
    v = pd.to_numeric(df[col], errors="coerce").dropna()
    return float(v.mean()) if len(v) else None


def _pm(s: Any, pct: bool) -> str:
    if s.mean is None:
        return "-"
    if pct:
        return f"{s.mean * 100:.2f}" + (f" ± {s.std * 100:.2f}" if s.std is not None else "") + "%"
    return f"{s.mean:.4f}" + (f" ± {s.std:.4f}" if s.std is not None else "")


def _ci(lo: Any, hi: Any, pct: bool, signed: bool = False) -> str:
    if lo is None or hi is None or (isinstance(lo, float) and pd.isna(lo)):
        return "-"
    f = "+.2f" if signed else ".2f"
    if pct:
        return f"[{lo * 100:{f}}, {hi * 100:{f}}]" + (" pp" if signed else "%")
    g = "+.4f" if signed else ".4f"
    return f"[{lo:{g}}, {hi:{g}}]"


def _p(p: Any) -> str:
    return "-" if p is None or (isinstance(p, float) and pd.isna(p)) else f"{p:.3g}"


def _delta(r: dict[str, Any], m: str, pct: bool) -> str:
    d = r.get(f"{m}_diff")
    if d is None:
        return "-"
    text = f"{d * 100:+.2f} pp" if pct else f"{d:+.4f}"
    ci = _ci(r.get(f"{m}_diff_ci_low"), r.get(f"{m}_diff_ci_high"), pct, signed=True)
    return text + ("" if ci == "-" else f" {ci}")


def _count(r: dict[str, Any], m: str) -> str:
    better, n = r.get(f"{m}_better"), r.get(f"{m}_n_pairs")
    return "-" if not is_number(better) or not is_number(n) else f"{int(better)} of {int(n)}"


def _prob(r: dict[str, Any], m: str) -> str:
    v, lo, hi = r.get(f"{m}_p_improve"), r.get(f"{m}_p_improve_ci_low"), r.get(f"{m}_p_improve_ci_high")
    return "-" if not is_number(v) else f"{float(v):.2f} [{float(lo):.2f}, {float(hi):.2f}]"


def _points(v: Any) -> str:
    return "-" if not is_number(v) else f"≥ {float(v) * 100:.2f} pp"


def variant_table(ok: pd.DataFrame, rows: pd.DataFrame, variants: list[str], base: str | None,
                  stats_rows: list[dict[str, Any]] | None = None, correction: str = "holm") -> tuple[pd.DataFrame, set]:
    """Display table of the variants and the cells to highlight (best mean accuracy/kappa, least cost).

    ``stats_rows``: :func:`nasattn.stats.analyze` of ``rows`` (computed when None).
    """
    if stats_rows is None:
        stats_rows = analyze(rows, variants, base, correction=correction)
    by = {r["variant"]: r for r in stats_rows}
    disp, num = [], []
    for v in variants:
        d = ok[ok["variant"] == v]
        r = by.get(v, {})
        acc = summarize(pd.to_numeric(d["test_accuracy"], errors="coerce").tolist())
        kap = summarize(pd.to_numeric(d.get("kappa", pd.Series(dtype=float)), errors="coerce").tolist())
        n_all = int((rows["variant"] == v).sum())
        few = " †" if len(d) and len(d) < 3 else ""
        row = {"variant": v + (" (base)" if v == base else ""), "runs ok": f"{len(d)}/{n_all}{few}",
               "test accuracy": _pm(acc, True),
               "test acc. 95% CI": _ci(r.get("test_accuracy_ci_low"), r.get("test_accuracy_ci_high"), True),
               "Δ test acc. vs base [95% CI]": _delta(r, "test_accuracy", True),
               "Δ two-level bootstrap 95% CI": _ci(r.get("boot_ci_low"), r.get("boot_ci_high"), True, signed=True),
               "d_z": fmt_num(r.get("test_accuracy_effect_dz"), 3),
               "p (paired t)": _p(r.get("test_accuracy_p")), f"p adj. ({correction})": _p(r.get("test_accuracy_p_adj")),
               "p (sign-flip, exact)": _p(r.get("test_accuracy_perm_p")),
               "runs better": _count(r, "test_accuracy"),
               "P(better) [95% CI]": _prob(r, "test_accuracy"),
               "detectable (80% power)": _points(r.get("test_accuracy_detectable")),
               "runs needed": fmt_num(r.get("test_accuracy_runs_needed"), 6),
               "verdict": r.get("verdict") or "",
               "kappa": _pm(kap, False), "kappa 95% CI": _ci(r.get("kappa_ci_low"), r.get("kappa_ci_high"), False),
               "Δ kappa vs base [95% CI] (secondary)": _delta(r, "kappa", False),
               "kappa p": _p(r.get("kappa_p")), "kappa p adj. (own family)": _p(r.get("kappa_p_adj")),
               "params": fmt_count(_mean(d, "params")), "FLOPs": fmt_count(_mean(d, "flops")),
               "train s": fmt_num(_mean(d, "train_seconds"), 3)}
        nrow = {"test accuracy": acc.mean, "kappa": kap.mean, "params": _mean(d, "params"),
                "FLOPs": _mean(d, "flops"), "train s": _mean(d, "train_seconds")}
        disp.append(row)
        num.append(nrow)
    rules = {"test accuracy": "max", "kappa": "max", "params": "min", "FLOPs": "min", "train s": "min"}
    return pd.DataFrame(disp), best_cells(pd.DataFrame(num), rules)


def statistics_notes(stats_rows: list[dict[str, Any]], correction: str) -> list[str]:
    """The sentences under the variant table: methods, which variance the CIs cover, each comparison's caveats."""
    method = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}.get(correction, correction)
    primary = next((r.get("primary_metric") for r in stats_rows if r.get("primary_metric")), DEFAULT_PRIMARY)
    out = [
        "Mean ± sample std over runs; 95% CI: Student t, clipped to the metric's range; † fewer than 3 runs. "
        "Δ: mean paired difference to the base over the runs both have (same seed and split), with its 95% t CI; "
        "accuracies are compared as whole test images (1/n_test), so a constant difference has zero variance and "
        "gets no t-test. d_z: Cohen's d_z (mean / sd of the paired differences). p: paired t-test.",
        "Two-level bootstrap CI: resample the runs, then the test images within each resampled run (paired by "
        "image across the two variants); it covers seed-to-seed spread and test-image sampling, where the t CI "
        "covers the spread between runs only. p (sign-flip, exact): all 2^n sign flips of the paired differences. "
        "Runs better: the sign count. P(better): share of runs where the variant beats the base, Clopper-Pearson "
        "95% CI. Detectable: the smallest difference a paired t-test on this many runs would find with 80% power "
        "(5% two-sided) at the observed SD; runs needed: for the observed difference. Fewer than 3 runs: not testable.",
        f"Multiple comparisons: {method} correction over the variants, for the primary metric "
        f"({primary.replace('_', ' ')}) only; the verdict uses that family. Kappa, macro-F1 and ECE are secondary, "
        "each adjusted over the variants in its own family, never in the verdict.",
        f"McNemar (per run only, in the notes below): {MODEL_LEVEL}; a statement about two sets of trained weights, "
        "not about the architectures, so it is neither pooled over runs nor used in a verdict.",
    ]
    covers = next((r.get("ci_covers") for r in stats_rows if r.get("ci_covers")), None)
    if covers:
        out.append(f"The CIs cover: {covers}.")
    for r in stats_rows:
        if r.get("verdict"):
            out.append(f"{r['variant']}: {r['verdict']}.")
        for m, label in (("test_accuracy", "test accuracy"), ("kappa", "kappa")):
            if r.get(f"{m}_note"):
                out.append(f"{r['variant']} ({label}): {r[f'{m}_note']}.")
        for key in ("boot_note", "mcnemar_per_run"):
            if r.get(key):
                out.append(f"{r['variant']}: {r[key]}.")
    return out


def changes_table(meta: dict[str, Any]) -> pd.DataFrame:
    """ablation.json's ``differences`` (variant -> changes from the base) and ``skipped`` (variant -> why)."""
    rows = []
    diffs, skipped = meta.get("differences") or {}, meta.get("skipped") or {}
    for v, lines in diffs.items() if isinstance(diffs, dict) else []:
        rows.append({"variant": v, "differs from the base in": "; ".join(map(str, lines or []))})
    for v, why in skipped.items() if isinstance(skipped, dict) else []:
        rows.append({"variant": v, "differs from the base in": f"skipped: {why}"})
    return pd.DataFrame(rows)


def paper_numbers(meta: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The paper's numbers per preset (:func:`nasattn.presets.get_preset` ``.paper``), updated by ablation.json's ``paper``."""

    out: dict[str, dict[str, float]] = {}
    for name in list_presets():
        out[name] = {k: v for k, v in get_preset(name).paper.items() if k in PAPER_LABELS and is_number(v)}
    paper = meta.get("paper") or {}
    for name, values in paper.items() if isinstance(paper, dict) else []:
        if isinstance(values, dict):
            out.setdefault(name, {}).update({k: v for k, v in values.items() if k in PAPER_LABELS and is_number(v)})
    return out


def paper_reference(variant: str, meta: dict[str, Any]) -> str | None:
    """The paper network a variant reproduces: its own name, ``paper_<name>``, or the base's preset."""

    presets = list_presets()
    name = variant.removeprefix("paper_")
    if name in presets:
        return name
    source = meta.get("base_source") or {}
    if variant == meta.get("base") and isinstance(source, dict) and source.get("preset") in presets:
        return source["preset"]
    return None


def reproduced(d: pd.DataFrame, key: str) -> list[float]:
    """Per-seed values of ``key`` (``alpha``: the mean over the alpha/* columns of each run)."""
    if key in ("alpha", "alpha_decay_only"):
        cols = figures.alpha_columns(d) if key == "alpha" else [c for c in d.columns if str(c).startswith(DECAY_ONLY)]
        if not cols:
            return []
        return pd.to_numeric(d[cols].stack(), errors="coerce").groupby(level=0).mean().dropna().tolist()
    if key not in d.columns:
        return []
    return pd.to_numeric(d[key], errors="coerce").dropna().tolist()


def paper_table(ok: pd.DataFrame, variants: list[str], meta: dict[str, Any]) -> pd.DataFrame:
    """Paper vs reproduced (mean ± std over seeds) for the variants named like the paper's presets."""
    paper = paper_numbers(meta)
    out = []
    for v in variants:
        name = paper_reference(v, meta)
        if name not in paper:
            continue
        d = ok[ok["variant"] == v]
        label = v if v == name else f"{v} ({name})"
        for key, ref in paper[name].items():
            s = summarize(reproduced(d, key))
            pct = key != "kappa" and key != "alpha"
            ref_txt = (f"{ref * 100:.2f} points" if key == "confidence_gap" else fmt_pct(ref)) if pct else f"{ref:.4g}"
            mine = _pm(s, pct).replace("%", " points") if key == "confidence_gap" else _pm(s, pct)
            unit = " points" if key == "confidence_gap" else " pp"
            diff = "-" if s.mean is None else (f"{(s.mean - ref) * 100:+.2f}{unit}" if pct else f"{s.mean - ref:+.4f}")
            out.append({"variant": label, "metric": PAPER_LABELS.get(key, key), "paper": ref_txt,
                        "reproduced": mine, "n seeds": s.n, "difference": diff})
            decay = summarize(reproduced(d, "alpha_decay_only")) if key == "alpha" else None
            if decay is not None and decay.mean is not None:
                out.append({"variant": label, "metric": "mean alpha from weight decay alone (same init and schedule)",
                            "paper": "-", "reproduced": _pm(decay, False), "n seeds": decay.n,
                            "difference": f"{decay.mean - ref:+.4f}"})
    return pd.DataFrame(out)


def _mean_history(runs: list[dict[str, Any]]) -> pd.DataFrame:
    hs = [r["history"] for r in runs if r.get("history") is not None and not r["history"].empty and "epoch" in r["history"]]
    if not hs:
        return pd.DataFrame()
    cat = pd.concat(hs, ignore_index=True)
    return cat.apply(pd.to_numeric, errors="coerce").groupby("epoch", as_index=False).mean(numeric_only=True)


def _per_class(ok: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    cols = [c for c in ok.columns if str(c).startswith("per_class_accuracy/")]
    if not cols:
        return pd.DataFrame()
    g = ok[["variant", *cols]].copy()
    g[cols] = g[cols].apply(pd.to_numeric, errors="coerce")
    df = g.groupby("variant").mean()
    df.columns = [c[len("per_class_accuracy/"):] for c in df.columns]
    return df.reindex([v for v in variants if v in df.index])


def _summed_confusion(runs: list[dict[str, Any]]) -> tuple[list[list[float]] | None, list[str] | None]:

    total, names = None, None
    for r in runs:
        cm = r["metrics"].get("confusion_matrix")
        if not cm:
            continue
        df = pd.DataFrame(cm, dtype=float)
        if total is None:
            total, names = df, class_names(r["metrics"])
        elif df.shape == total.shape:
            total = total + df
    return (None, None) if total is None else (total.values.tolist(), names)


def render_ablation(folder: Path) -> Page:
    """The page of an ablation folder."""
    rows, meta = read_ablation(folder)
    ok = ok_rows(rows)
    variants = variants_of(rows)
    base = base_of(variants, meta)
    runs = load_runs(folder, ok)
    page = Page(f"nasattn ablation: {meta.get('name') or folder.name}", "ablation")
    source = meta.get("base_source") or {}
    data_source = meta.get("data") or next((r["metrics"].get("dataset") for rs in runs.values() for r in rs), None)
    page.header = {"folder": str(folder), "data": data_source, "command": meta.get("command"),
                   "base": f"{base} (preset {source['preset']})" if isinstance(source, dict) and source.get("preset") else base,
                   "variants": ", ".join(variants), "runs": f"{len(ok)} finished of {len(rows)}",
                   "seeds": ", ".join(map(str, meta.get("seeds") or [])) or None,
                   "split seeds": ", ".join(map(str, meta.get("split_seeds") or [])) or None,
                   "p-value correction": meta.get("correction"),
                   "width": None if meta.get("width_mult") is None else f"x{meta['width_mult']:g}",
                   "epochs": meta.get("epochs") or ("each recipe's own" if meta else None)}

    page.section("Variants", "ablation-variants")
    if rows.empty:
        page.text(f"{ABLATION_CSV} is missing or empty: no run has finished yet.", "warn")
    correction = meta.get("correction") if meta.get("correction") in ("holm", "bh", "none") else "holm"
    primary = meta.get("primary_metric") if meta.get("primary_metric") in PRIMARY_METRICS else DEFAULT_PRIMARY
    stats_rows = analyze(rows, variants, base, correction=correction, primary=primary,
                         predictions=predictions_from_run_dirs(rows, lambda d: resolve_run_dir(folder, d))) \
        if not rows.empty else []
    table, best = variant_table(ok, rows, variants, base, stats_rows, correction)
    page.table(table, "table-ablation-variants", best=best)
    for note in statistics_notes(stats_rows, correction):
        page.text(note)
    changes = changes_table(meta)
    if not changes.empty:
        page.section("What each variant changes", "ablation-changes")
        page.table(changes, "table-ablation-changes")
    ptable = paper_table(ok, variants, meta)
    if not ptable.empty:
        page.section("Paper vs reproduced", "ablation-paper")
        page.table(ptable, "table-ablation-paper")
        page.text("The paper trained full-size networks with each recipe's own epochs; the reproduced values are "
                  "this ablation's runs (see the width and epochs above).")

    _add_accuracy(page, ok, variants, base, meta, runs)
    _add_training(page, variants, runs)

    page.section("Runs", "ablation-runs")
    wanted = ("variant", "seed", "split_seed", "status", "test_accuracy", "kappa", "val_accuracy", "train_seconds", "run_dir", "error")
    cols = [c for c in wanted if c in rows.columns]
    page.table(rows[cols].reset_index(drop=True), "table-ablation-runs",
               formats={"test_accuracy": fmt_pct, "val_accuracy": fmt_pct})
    page.footer = environment(meta.get("command"), data_source)
    return page


def _add_accuracy(page: Page, ok: pd.DataFrame, variants: list[str], base: str, meta: dict[str, Any],
                  runs: dict[str, list[dict[str, Any]]]) -> None:
    """The accuracy section: test accuracy bars (paper values marked), per-class heatmap, the base's confusion matrix."""
    page.section("Accuracy", "ablation-accuracy")
    sums = [summarize(pd.to_numeric(ok.loc[ok["variant"] == v, "test_accuracy"], errors="coerce").tolist()) for v in variants]
    paper = paper_numbers(meta)
    ref = {v: paper[name]["test_accuracy"] for v in variants
           if (name := paper_reference(v, meta)) in paper and "test_accuracy" in paper[name]}
    page.figure(figures.bars(variants, [s.mean for s in sums], [s.half_width if s.half_width is not None else s.std for s in sums],
                             title="Test accuracy per variant (error bars: 95% CI, clipped to 0-100%)",
                             yaxis="test accuracy", reference=ref),
                "fig-ablation-accuracy", note="Error bars: the 95% CI of the table, clipped to the metric's range "
                                              "[0%, 100%] as the table's intervals are.")
    page.figure(figures.heatmap(_per_class(ok, variants), "Per-class test accuracy (mean over seeds)"), "fig-ablation-per-class")
    if base in runs:
        cm, names = _summed_confusion(runs[base])
        page.figure(figures.confusion_matrix(cm, names, f"Confusion matrix of the base ({base}), summed over "
                                             f"{len(runs[base])} seed(s)"), "fig-ablation-confusion")


def _add_training(page: Page, variants: list[str], runs: dict[str, list[dict[str, Any]]]) -> None:
    """The training section: mean training curves, each variant's fusion weights, confidence histograms."""
    page.section("Training", "ablation-training")
    hist = {v: _mean_history(runs[v]) for v in variants if v in runs}
    page.figure(figures.training_curves(hist, "Training curves (mean over seeds)"), "fig-ablation-curves")
    for v, h in hist.items():
        decay = any(str(c).startswith(DECAY_ONLY) for c in h.columns)
        page.figure(figures.alpha_control_curves(h, f"{v}: fusion weight alpha over epochs (mean over seeds)"
                                  + (", learned vs weight decay alone" if decay else "")),
                    f"fig-ablation-alpha-{variants.index(v)}")
    preds = {v: pd.concat([r["predictions"] for r in runs[v] if r.get("predictions") is not None], ignore_index=True)
             for v in variants if v in runs and any(r.get("predictions") is not None for r in runs[v])}
    page.figure(figures.confidence_histograms(preds), "fig-ablation-confidence")
    if not runs:
        page.text("No run folder could be read: no training curves, confusion matrix or confidence histograms.", "warn")
