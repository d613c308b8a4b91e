"""The report of an ablation path (``nasattn ablate --path``): the path drawn and each step's contribution.

Reads OUT/path.json, path_summary.csv and path.csv (written by :mod:`nasattn.ablation.path.run`);
computes nothing new.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from nasattn.report.html import Page
from nasattn.schema import PATH_CSV, PATH_JSON, PATH_SUMMARY_CSV, TrialStatus


def _pts(v: Any, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "-"
    return f"{v * 100:+.2f}" if sign else f"{v * 100:.2f}"


def path_figure(summary: pd.DataFrame, runs: pd.DataFrame):
    """Test accuracy after each flip (mean and 95% CI over seeds), the candidates of each step as grey points."""
    import plotly.graph_objects as go  # plotly: optional heavy package, imported when a report is drawn

    labels = [f"{int(s)}: {d}" for s, d in zip(summary["step"], summary["decision"])]
    mean = summary["test_accuracy_mean"] * 100
    fig = go.Figure()
    if not runs.empty:
        done = runs[runs["status"] == TrialStatus.COMPLETE]
        cand = done.groupby(["step", "decision"], dropna=False)["test_accuracy"].mean().reset_index()
        cand = cand[cand["step"] > 0]
        step_label = dict(zip(summary["step"], labels))
        fig.add_trace(go.Scatter(x=[step_label.get(s, str(s)) for s in cand["step"]], y=cand["test_accuracy"] * 100,
                                 mode="markers", marker={"color": "lightgrey", "size": 8}, name="candidates (mean)",
                                 text=cand["decision"], hovertemplate="flip %{text}: %{y:.2f}%<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=labels, y=mean, mode="lines+markers", name="path (mean, 95% CI)",
        error_y={"type": "data", "symmetric": False,
                 "array": (summary["test_accuracy_ci_high"] * 100 - mean).tolist(),
                 "arrayminus": (mean - summary["test_accuracy_ci_low"] * 100).tolist()}))
    fig.update_layout(title="Ablation path: test accuracy after each flip", xaxis_title="step: decision flipped",
                      yaxis_title="test accuracy (%)", height=440, template="plotly_white")
    return fig


def contribution_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Step, decision, accuracy with CI, the paired difference to the previous point with CI, p and adjusted p."""
    def ci(low: Any, high: Any, sign: bool = False) -> str:
        return "-" if pd.isna(low) else f"[{_pts(low, sign)}, {_pts(high, sign)}]"

    rows = []
    for _, s in summary.iterrows():
        rows.append({
            "step": int(s["step"]), "flipped": s["decision"], "runs": s.get("n"),
            "test accuracy %": _pts(s.get("test_accuracy_mean")),
            "95% CI": ci(s.get("test_accuracy_ci_low"), s.get("test_accuracy_ci_high")),
            "contribution (points)": _pts(s.get("test_accuracy_diff"), True),
            "diff 95% CI": ci(s.get("test_accuracy_diff_ci_low"), s.get("test_accuracy_diff_ci_high"), True),
            "paired t p": "-" if pd.isna(s.get("test_accuracy_p")) else f"{s['test_accuracy_p']:.3g}",
            "p adj.": "-" if pd.isna(s.get("test_accuracy_p_adj")) else f"{s['test_accuracy_p_adj']:.3g}",
            "candidates (mean val. acc.)": s.get("candidate_means") if isinstance(s.get("candidate_means"), str) else "",
        })
    return pd.DataFrame(rows)


def render_path(folder: str | Path) -> Page:
    """The page of a path folder."""
    d = Path(folder)
    info = json.loads((d / PATH_JSON).read_text())
    try:
        summary = pd.read_csv(d / PATH_SUMMARY_CSV)
    except pd.errors.EmptyDataError:  # stopped before FROM finished: nothing chosen yet
        summary = pd.DataFrame()
    runs = pd.read_csv(d / PATH_CSV) if (d / PATH_CSV).is_file() else pd.DataFrame()
    page = Page(f"Ablation path: {info.get('from')} -> {info.get('to')}", "path")
    page.header = {"command": info.get("command"), "seeds": ", ".join(map(str, info.get("seeds", []))),
                   "epochs": info.get("epochs"), "width": info.get("width_mult"), "subset": info.get("subset"),
                   "chosen by": f"mean {info.get('select_metric')} over the seeds",
                   "trainings per seed": info.get("trainings_per_seed")}
    page.section("The path")
    if summary.empty:
        page.text("No point has finished yet: the path stopped before FROM's runs finished.")
        return page
    page.figure(path_figure(summary, runs), "fig-path")
    page.table(contribution_table(summary), "tbl-path", "Each step's contribution")
    page.text("Contribution: the paired difference (by seed) in test accuracy between the point after the flip and "
              "the point before it, with its t interval and paired t-test p; p adjusted over the steps "
              f"({summary['correction'].iloc[0] if 'correction' in summary and len(summary) else 'none'}). "
              "Each step's flip was chosen among the candidates by the validation accuracy of the same seeds, "
              "so a step that had several candidates is a selected comparison; the last step had one.")
    page.table(pd.DataFrame(info.get("decisions", [])), "tbl-decisions", "Decisions in which FROM and TO differ")
    return page

