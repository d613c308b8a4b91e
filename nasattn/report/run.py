"""The report of one training run folder (metrics.json, history.csv, predictions.csv, arch.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from nasattn.schema import HISTORY_FILE, PREDICTIONS_FILE, VAL_ACCURACY_BEST
from nasattn.report import figures
from nasattn.report.env import environment
from nasattn.report.html import Page, escape, fmt_count, fmt_num, fmt_pct, is_number

SUMMARY_ROWS: tuple[tuple[str, str, Any], ...] = (
    ("test_accuracy", "test accuracy", fmt_pct),
    (VAL_ACCURACY_BEST, "val accuracy (best epoch)", fmt_pct),
    ("kappa", "Cohen's kappa", lambda v: fmt_num(v, 4)),
    ("macro_f1", "macro F1", lambda v: fmt_num(v, 4)),
    ("min_class_accuracy", "min class accuracy", fmt_pct),
    ("confidence_gap", "confidence gap (correct - wrong)", lambda v: f"{v * 100:.2f} points" if is_number(v) else "-"),
    ("ece", "ECE", lambda v: fmt_num(v, 4)),
    ("params", "parameters", fmt_count),
    ("flops", "FLOPs / image", fmt_count),
    ("layers", "layers (paper's count)", str),
    ("conv_layers", "conv layers", str),
    ("train_seconds", "train seconds", lambda v: f"{v:.1f}" if is_number(v) else "-"),
    ("best_epoch", "best epoch", str),
    ("epochs_run", "epochs run", str),
    ("stop_reason", "stop reason", str),
    ("device", "device", str),
)


def class_names(metrics: dict[str, Any]) -> list[str] | None:
    """The class names of a run (``class_names``, else the keys of ``per_class_accuracy``)."""
    names = metrics.get("class_names") or list((metrics.get("per_class_accuracy") or {}).keys())
    return list(names) or None


def summary_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The headline metrics as a two-column frame (metric, value); missing metrics are skipped."""
    rows = [{"metric": label, "value": fmt(metrics[key])} for key, label, fmt in SUMMARY_ROWS
            if metrics.get(key) is not None]
    alpha = metrics.get("alpha") or {}
    if alpha:
        vals = [v for v in alpha.values() if is_number(v)]
        if vals:
            rows.append({"metric": "alpha s=sigmoid(a)",
                         "value": f"mean {sum(vals) / len(vals):.3f} over {len(vals)} blocks (min {min(vals):.3f}, max {max(vals):.3f})"})
        control = [v for v in (metrics.get("alpha_decay_only") or {}).values() if is_number(v)]
        if control:
            rows.append({"metric": "alpha under weight decay alone",
                         "value": f"mean {sum(control) / len(control):.3f} over {len(control)} blocks "
                                  f"(min {min(control):.3f}, max {max(control):.3f})"})
    return pd.DataFrame(rows)


def per_class_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Per-class test accuracy, lowest first."""
    pca = metrics.get("per_class_accuracy") or {}
    df = pd.DataFrame({"class": list(pca), "accuracy": list(pca.values())})
    return df.sort_values("accuracy").reset_index(drop=True) if not df.empty else df


def add_run_sections(page: Page, run: dict[str, Any], prefix: str = "run", label: str = "run", level: int = 2) -> None:
    """Summary, per-class accuracy, confusion matrix, curves, alpha and confidence of one read run
    (sections at heading ``level``: 3 inside another report)."""
    m, hist, preds = run.get("metrics") or {}, run.get("history"), run.get("predictions")
    page.section("Summary", f"{prefix}-summary", level)
    page.table(summary_table(m), f"table-{prefix}-summary")
    page.section("Per-class accuracy", f"{prefix}-per-class", level)
    page.table(per_class_table(m), f"table-{prefix}-per-class", formats={"accuracy": fmt_pct})
    page.figure(figures.confusion_matrix(m.get("confusion_matrix"), class_names(m)), f"fig-{prefix}-confusion")
    page.section("Training", f"{prefix}-training", level)
    if hist is None or hist.empty:
        page.text(f"{HISTORY_FILE} is missing or empty.", "warn")
    else:
        page.figure(figures.training_curves({label: hist}), f"fig-{prefix}-curves")
        page.figure(figures.learning_rate(hist), f"fig-{prefix}-lr")
        page.figure(figures.alpha_control_curves(hist), f"fig-{prefix}-alpha")
    if preds is not None:
        page.figure(figures.confidence_histograms({label: preds}), f"fig-{prefix}-confidence")
    else:
        page.text(f"{PREDICTIONS_FILE} is missing: no confidence histogram.", "warn")
    for name in ("arch", "recipe"):
        if run.get(name):
            page.section(f"{name}.yaml", f"{prefix}-{name}", level)
            page.raw(f'<pre id="{prefix}-{name}-yaml">{escape(run[name])}</pre>')


def render_run(folder: Path) -> Page:
    """The page of a training run folder."""
    from nasattn.engine import read_run  # lazy: keeps torch out of reading a report

    run = read_run(folder)
    m = run["metrics"]
    page = Page(f"nasattn run: {m.get('arch_name') or folder.name}", "run")
    page.header = {"folder": str(folder), "data": m.get("dataset"), "command": m.get("command"),
                   "test accuracy": fmt_pct(m.get("test_accuracy")),
                   "seed": m.get("seed"), "width multiplier": m.get("width_mult")}
    add_run_sections(page, run)
    page.footer = environment(m.get("command"), m.get("dataset"))
    return page
