"""Plotly figure builders shared by the run, search and ablation reports.

Every builder returns a ``plotly.graph_objects.Figure`` with a title, or None when there is nothing to
plot (so partial folders render what exists).
"""

from __future__ import annotations

import html
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
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    return _layout(fig, title)


def learning_rate(history: pd.DataFrame, title: str = "Learning rate") -> go.Figure | None:
    """The learning rate per epoch."""
    y = _col(history, "lr")
    if y is None or "epoch" not in history.columns:
        return None
    fig = go.Figure(go.Scatter(x=history["epoch"], y=y, mode="lines+markers", name="lr"))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="learning rate", exponentformat="e")
    return _layout(fig, title, height=300)


def alpha_columns(df: pd.DataFrame | None) -> list[str]:
    """The ``alpha/<block>`` columns of a history/ablation frame that hold numbers."""
    if df is None:
        return []
    return [c for c in df.columns if str(c).startswith("alpha/") and _col(df, c) is not None]


DECAY_ONLY = "alpha_decay_only/"  # history column prefix: the alpha weight decay alone would give


def alpha_control_curves(history: pd.DataFrame, title: str = "Fusion weight alpha: learned vs weight decay alone"
                         ) -> go.Figure | None:
    """Learned ``alpha/<block>`` (solid) beside ``alpha_decay_only/<block>`` (dashed, same colour) per epoch.

    The dashed curve is where weight decay alone (zero loss gradient, same init and LR schedule) would
    have moved alpha; a learned curve that stays on it cannot be told apart from weight decay.
    None without alpha columns.
    """
    cols = alpha_columns(history)
    if not cols or "epoch" not in history.columns:
        return None
    fig = go.Figure()
    for i, c in enumerate(cols):
        block, color = c[len("alpha/"):], _color(i)
        fig.add_trace(go.Scatter(x=history["epoch"], y=history[c], mode="lines+markers", name=f"{block} (learned)",
                                 legendgroup=block, line={"color": color}))
        control = _col(history, DECAY_ONLY + block)
        if control is not None:
            fig.add_trace(go.Scatter(x=history["epoch"], y=control, mode="lines", name=f"{block} (weight decay alone)",
                                     legendgroup=block, line={"color": color, "dash": "dash"}))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="alpha = sigmoid(a) (spatial weight)")
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


def bars(labels: Sequence[str], values: Sequence[float | None], errors: Sequence[float | None] | None = None,
         title: str = "", yaxis: str = "", percent: bool = True, reference: Mapping[str, float] | None = None,
         ) -> go.Figure | None:
    """A bar per label with optional error bars, and optional reference markers (e.g. the paper's numbers)."""
    if not labels or all(v is None for v in values):
        return None
    err = None
    if errors is not None:
        err = dict(type="data", array=[0 if e is None else e for e in errors], visible=True)
    fig = go.Figure(go.Bar(x=list(labels), y=list(values), error_y=err, name="reproduced",
                           marker_color=[_color(i) for i in range(len(labels))]))
    if reference:
        xs = [lb for lb in labels if lb in reference]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=[reference[x] for x in xs], mode="markers", name="paper",
                                     marker=dict(symbol="diamond", size=12, color="black")))
    fig.update_yaxes(title_text=yaxis, tickformat=".1%" if percent else None)
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
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    return _layout(fig, title, height=480)


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
