"""Plotly figure builders shared by the run, search and ablation reports.

Every builder returns a ``plotly.graph_objects.Figure`` with a title, or None when there is nothing to
plot (so partial folders render what exists).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

PALETTE = qualitative.Plotly + qualitative.D3


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=60, r=20, t=60, b=50), template="plotly_white")
    return fig


def epoch_axis(fig: go.Figure, epochs: Any = None) -> go.Figure:
    """Whole-number epoch ticks on every x-axis (1, 2, 3 ...; about 10 ticks at most)."""
    last = pd.to_numeric(pd.Series(epochs), errors="coerce").max() if epochs is not None else None
    step = max(1, math.ceil(float(last) / 10)) if last is not None and pd.notna(last) else 1
    fig.update_xaxes(title_text="epoch", tickmode="linear", tick0=1 if step == 1 else 0, dtick=step, tickformat="d")
    return fig


def _col(df: pd.DataFrame, name: str) -> pd.Series | None:
    if df is None or name not in df.columns:
        return None
    s = pd.to_numeric(df[name], errors="coerce")
    return s if s.notna().any() else None


def training_curves(histories: Mapping[str, pd.DataFrame], title: str = "Training curves") -> go.Figure | None:
    """Loss and accuracy per epoch (train dashed, val solid), one colour per labelled history."""
    histories = {k: h for k, h in histories.items() if h is not None and not h.empty and "epoch" in h.columns}
    if not histories:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for i, (label, h) in enumerate(histories.items()):
        for col, (kind, dash) in enumerate((("loss", "dash"), ("accuracy", "solid")), start=1):
            for split in ("train", "val"):
                y = _col(h, f"{split}_{kind}")
                if y is None:
                    continue
                fig.add_trace(go.Scatter(
                    x=h["epoch"], y=y, mode="lines+markers", name=f"{label} {split}",
                    line=dict(color=_color(i), dash="dash" if split == "train" else "solid"),
                    legendgroup=label, showlegend=col == 1 or _col(h, f"{split}_loss") is None,
                ), row=1, col=col)
    epoch_axis(fig, pd.concat([h["epoch"] for h in histories.values()]))
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    return _layout(fig, title)


def learning_rate(history: pd.DataFrame, title: str = "Learning rate") -> go.Figure | None:
    """The learning rate per epoch."""
    y = _col(history, "lr")
    if y is None or "epoch" not in history.columns:
        return None
    fig = go.Figure(go.Scatter(x=history["epoch"], y=y, mode="lines+markers", name="lr"))
    epoch_axis(fig, history["epoch"])
    fig.update_yaxes(title_text="learning rate", exponentformat="e")
    return _layout(fig, title, height=300)


def alpha_columns(df: pd.DataFrame | None) -> list[str]:
    """The ``alpha/<block>`` columns of a history/ablation frame that hold numbers."""
    if df is None:
        return []
    return [c for c in df.columns if str(c).startswith("alpha/") and _col(df, c) is not None]


DECAY_ONLY = "alpha_decay_only/"  # history column prefix: the alpha weight decay alone would give


def stage_of(block: str) -> str:
    """The stage a block name belongs to (``stages.1.0.attention`` -> ``stage 2``); ``all blocks`` otherwise."""
    m = re.search(r"stages?[._]?(\d+)", block)
    return f"stage {int(m.group(1)) + (1 if block.startswith('stages.') else 0)}" if m else "all blocks"


def stage_means(history: pd.DataFrame, prefix: str) -> dict[str, tuple[pd.Series, int]]:
    """``{stage: (mean of the stage's <prefix><block> columns per row, number of blocks)}`` in stage order."""
    groups: dict[str, list[str]] = {}
    for c in history.columns:
        if str(c).startswith(prefix) and _col(history, c) is not None:
            groups.setdefault(stage_of(str(c)[len(prefix):]), []).append(c)
    return {st: (history[cols].apply(pd.to_numeric, errors="coerce").mean(axis=1), len(cols))
            for st, cols in groups.items()}


def unit_range(values: Sequence[float], min_span: float = 0.1) -> list[float]:
    """A y-range inside [0, 1] around ``values``, at least ``min_span`` wide (tiny changes stay tiny)."""
    lo, hi = min(values), max(values)
    half = max(hi - lo, min_span) / 2 * 1.1
    mid = min(max((lo + hi) / 2, half), 1 - half)
    return [max(0.0, mid - half), min(1.0, mid + half)]


def alpha_control_curves(history: pd.DataFrame, title: str = "Fusion weight alpha: learned vs weight decay alone"
                         ) -> go.Figure | None:
    """Learned alpha (solid) beside alpha under weight decay alone (dashed, same colour) per epoch: one line per
    stage, the mean over its blocks, on a y-range at least 0.1 wide.

    The dashed curve is where weight decay alone (zero loss gradient, same init and LR schedule) would
    have moved alpha; a learned curve that stays on it cannot be told apart from weight decay.
    None without alpha columns.
    """
    if not alpha_columns(history) or "epoch" not in history.columns:
        return None
    fig = go.Figure()
    learned, control = stage_means(history, "alpha/"), stage_means(history, DECAY_ONLY)
    shown: list[float] = []
    for i, (st, (y, n)) in enumerate(learned.items()):
        name = f"{st} ({n} {'block' if n == 1 else 'blocks'})"
        fig.add_trace(go.Scatter(x=history["epoch"], y=y, mode="lines+markers", name=f"{name}, learned",
                                 legendgroup=st, line={"color": _color(i)}))
        shown += y.dropna().tolist()
        if st in control:
            fig.add_trace(go.Scatter(x=history["epoch"], y=control[st][0], mode="lines", legendgroup=st,
                                     name=f"{st}, weight decay alone", line={"color": _color(i), "dash": "dash"}))
            shown += control[st][0].dropna().tolist()
    epoch_axis(fig, history["epoch"])
    fig.update_yaxes(title_text="alpha = sigmoid(a), mean of the stage", range=unit_range(shown))
    return _layout(fig, title)


def plain_label(text: object) -> str:
    """``text`` as plotly shows it literally: its ``<``, ``>`` and ``&`` escaped, so a class folder named
    like ``<a href=...>`` is no link (plotly renders a subset of HTML tags in labels)."""
    return html.escape(str(text), quote=False)


def confusion_matrix(cm: Sequence[Sequence[float]] | None, classes: Sequence[str] | None,
                     title: str = "Confusion matrix (test)") -> go.Figure | None:
    """Counts as text, colour = row-normalised rate (recall); rows true, columns predicted."""
    if not cm:
        return None
    df = pd.DataFrame(cm, dtype=float)
    n = len(df)
    names = [plain_label(c) for c in classes] if classes and len(classes) == n else [str(i) for i in range(n)]
    rates = df.div(df.sum(axis=1).replace(0, 1), axis=0)
    text = [[f"{int(v)}" if float(v).is_integer() else f"{v:.1f}" for v in row] for row in df.values]
    fig = go.Figure(go.Heatmap(z=rates.values, x=names, y=names, text=text, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=1, colorbar=dict(title="recall", tickformat=".0%"),
                               hovertemplate="true %{y}<br>pred %{x}<br>count %{text}<br>row rate %{z:.1%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text="true class")
    fig.update_xaxes(title_text="predicted class", tickangle=-35)
    return _layout(fig, title, height=max(420, 38 * n + 140))


def confidence_histograms(predictions: Mapping[str, pd.DataFrame],
                          title: str = "Confidence of correct vs wrong test predictions") -> go.Figure | None:
    """Per labelled predictions frame: overlaid histograms of the top-class confidence, correct vs wrong."""
    preds = {k: p for k, p in predictions.items()
             if p is not None and not p.empty and {"confidence", "correct"} <= set(p.columns)}
    if not preds:
        return None
    fig = make_subplots(rows=1, cols=len(preds), subplot_titles=list(preds), shared_yaxes=True)
    for j, (label, p) in enumerate(preds.items(), start=1):
        correct = p["correct"].astype(str).str.lower().isin(("true", "1", "1.0"))
        conf = pd.to_numeric(p["confidence"], errors="coerce")
        for mask, name, color in ((correct, "correct", "#2ca02c"), (~correct, "wrong", "#d62728")):
            fig.add_trace(go.Histogram(x=conf[mask], name=name, marker_color=color, opacity=0.6,
                                       xbins=dict(start=0, end=1.0001, size=0.05), legendgroup=name,
                                       showlegend=j == 1), row=1, col=j)
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="confidence")
    return _layout(fig, title, height=380)


def clipped_errors(values: Sequence[float | None], errors: Sequence[float | None],
                   bounds: tuple[float, float] | None) -> tuple[list[float], list[float]]:
    """Symmetric half-widths as (plus, minus) error arrays, clipped so ``value ± error`` stays within ``bounds``."""
    plus, minus = [], []
    for v, e in zip(values, errors):
        e = 0.0 if e is None or v is None or pd.isna(e) or pd.isna(v) else float(e)
        lo, hi = bounds if bounds else (-math.inf, math.inf)
        plus.append(max(0.0, min(e, hi - v)) if e else 0.0)
        minus.append(max(0.0, min(e, v - lo)) if e else 0.0)
    return plus, minus


def bars(labels: Sequence[str], values: Sequence[float | None], errors: Sequence[float | None] | None = None,
         title: str = "", yaxis: str = "", percent: bool = True, reference: Mapping[str, float] | None = None,
         bounds: tuple[float, float] | None = (0.0, 1.0), notes: Sequence[str | None] | None = None,
         ) -> go.Figure | None:
    """A bar per label with optional error bars clipped to ``bounds`` (the metric's range), optional reference
    markers (e.g. the paper's numbers), and ``notes`` written on the bars (and in place of a missing bar)."""
    if not labels or all(v is None or pd.isna(v) for v in values):
        return None
    err = None
    if errors is not None:
        plus, minus = clipped_errors(values, errors, bounds)
        err = dict(type="data", symmetric=False, array=plus, arrayminus=minus, visible=True)
    notes = list(notes) if notes is not None else [None] * len(labels)
    fig = go.Figure(go.Bar(x=list(labels), y=list(values), error_y=err, name="reproduced",
                           text=[n or "" for n in notes], textposition="inside", insidetextanchor="start",
                           marker_color=[_color(i) for i in range(len(labels))]))
    for label, v, note in zip(labels, values, notes):
        if note and (v is None or pd.isna(v)):  # an empty slot says why it is empty
            fig.add_annotation(x=label, y=0, yref="y", text=note, showarrow=False, yanchor="bottom",
                               textangle=-90, font=dict(color="#a15c00"))
    if reference:
        xs = [lb for lb in labels if lb in reference]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=[reference[x] for x in xs], mode="markers", name="paper",
                                     marker=dict(symbol="diamond", size=12, color="black")))
    fig.update_yaxes(title_text=yaxis, tickformat=".1%" if percent else None)
    if bounds and percent:
        fig.update_yaxes(rangemode="tozero")
        tops = [v + p for v, p in zip(values, err["array"] if err else [0] * len(values)) if v is not None and not pd.isna(v)]
        tops += list((reference or {}).values())
        fig.update_yaxes(range=[bounds[0], min(bounds[1], max(tops) * 1.08) if tops else bounds[1]])
    return _layout(fig, title)


def heatmap(df: pd.DataFrame, title: str, percent: bool = True, colorscale: str = "RdYlGn") -> go.Figure | None:
    """A labelled heatmap of a numeric frame (rows x columns), values written in the cells."""
    if df is None or df.empty:
        return None
    z = df.apply(pd.to_numeric, errors="coerce")
    text = [[("" if pd.isna(v) else (f"{v * 100:.1f}" if percent else f"{v:.3g}")) for v in row] for row in z.values]
    fig = go.Figure(go.Heatmap(z=z.values, x=[str(c) for c in z.columns], y=[str(i) for i in z.index], text=text,
                               texttemplate="%{text}", colorscale=colorscale,
                               colorbar=dict(tickformat=".0%" if percent else None)))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-35)
    return _layout(fig, title, height=max(320, 36 * len(z) + 180))


def optimization_history(numbers: Sequence[int], values: Sequence[float], direction: str = "max",
                         title: str = "Optimization history", yaxis: str = "objective",
                         labels: Sequence[str] | None = None) -> go.Figure | None:
    """Each finished trial's objective and the best-so-far line."""
    pts = [(n, v, (labels[i] if labels else "")) for i, (n, v) in enumerate(zip(numbers, values)) if v is not None and pd.notna(v)]
    if not pts:
        return None
    pts.sort()
    best, run = [], None
    for _, v, _ in pts:
        run = v if run is None else (max(run, v) if direction == "max" else min(run, v))
        best.append(run)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name="trial",
                             text=[p[2] for p in pts], hovertemplate="trial %{x}<br>%{y}<br>%{text}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=best, mode="lines", name="best so far", line=dict(shape="hv")))
    fig.update_xaxes(title_text="trial number")
    fig.update_yaxes(title_text=yaxis)
    return _layout(fig, title)


def parallel_coordinates(df: pd.DataFrame, columns: Sequence[str], color: str,
                         title: str = "Parallel coordinates") -> go.Figure | None:
    """One line per row across ``columns`` (categorical columns get labelled ticks), coloured by ``color``."""
    if df is None or df.empty or not columns:
        return None
    dims: list[dict[str, Any]] = []
    for c in list(columns) + ([color] if color not in columns else []):
        if c not in df.columns:
            continue
        s = df[c]
        num = pd.to_numeric(s, errors="coerce")
        label = c.split(".", 1)[1] if c.startswith(("param.", "objective.")) else c
        if num.notna().sum() == s.notna().sum() and num.notna().any():
            dims.append(dict(label=label, values=num.fillna(num.min()).tolist()))
        else:
            cats = sorted({str(v) for v in s.fillna("-")})
            codes = {v: i for i, v in enumerate(cats)}
            dims.append(dict(label=label, values=[codes[str(v)] for v in s.fillna("-")],
                             tickvals=list(range(len(cats))), ticktext=cats))
    if not dims:
        return None
    colors = pd.to_numeric(df[color], errors="coerce") if color in df.columns else None
    line: dict[str, Any] = {}
    if colors is not None and colors.notna().any():
        line = dict(color=colors.fillna(colors.min()).tolist(), colorscale="Viridis", showscale=True,
                    colorbar=dict(title=color.split(".", 1)[-1]))
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line, labelangle=-20, labelside="top",
                                 labelfont=dict(size=11), tickfont=dict(size=10)))
    _layout(fig, title, height=520)
    fig.update_layout(margin=dict(l=80, r=80, t=150, b=40), title=dict(y=0.97, yanchor="top"))
    return fig


def pareto_scatter(df: pd.DataFrame, x: str, y: str, front: str = "pareto", label: str = "number",
                   title: str = "Pareto front") -> go.Figure | None:
    """Trials on two objectives; rows whose boolean column ``front`` is true are highlighted and joined."""
    if df is None or x not in df.columns or y not in df.columns:
        return None
    d = df.assign(_x=pd.to_numeric(df[x], errors="coerce"), _y=pd.to_numeric(df[y], errors="coerce")).dropna(subset=["_x", "_y"])
    if d.empty:
        return None
    d = d.assign(_front=d[front].astype(bool) if front in d.columns else False)
    names = d[label].astype(str).tolist() if label in d.columns else [""] * len(d)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=d["_x"], y=d["_y"], mode="markers", name="trial", text=names,
                             marker=dict(color="#999"), hovertemplate="trial %{text}<br>%{x}<br>%{y}<extra></extra>"))
    f = d[d["_front"]].sort_values("_x")
    fig.add_trace(go.Scatter(x=f["_x"], y=f["_y"], mode="lines+markers", name="Pareto front",
                             text=f[label].astype(str).tolist() if label in f.columns else None,
                             marker=dict(size=11, color="#d62728"), line=dict(shape="hv")))
    fig.update_xaxes(title_text=x.split(".", 1)[-1])
    fig.update_yaxes(title_text=y.split(".", 1)[-1])
    return _layout(fig, title)
