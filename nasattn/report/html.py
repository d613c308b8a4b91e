"""Page assembly for the self-contained HTML reports: sections, tables, figures (plotly.js embedded once)."""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from nasattn.safewrite import write_file

CSS = """
*,*::before,*::after{box-sizing:border-box}
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;padding:0 1.5em;color:#222}
main,header,footer{max-width:100%;overflow-wrap:anywhere}
div.tablebox{max-width:100%;overflow-x:auto;margin:.5em 0;border-left:1px solid #eee}
div.figure{max-width:100%;overflow:hidden}
pre{max-width:100%;overflow-x:auto;background:#fafafa;padding:.5em}
header,footer{color:#555;font-size:.9em;border-bottom:1px solid #ddd;padding:.6em 0}
footer{border-top:1px solid #ddd;border-bottom:none;margin-top:2em}
h1{margin:.4em 0 .2em} h2{margin-top:1.6em;border-bottom:1px solid #eee}
table.nasattn{border-collapse:separate;border-spacing:0;font-size:.85em;margin:0}
table.nasattn th,table.nasattn td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
table.nasattn th{background:#f4f4f4} table.nasattn td:first-child{text-align:left}
table.nasattn th:first-child,table.nasattn td:first-child{position:sticky;left:0;z-index:1;background:#fff;box-shadow:1px 0 0 #ccc}
table.nasattn th:first-child{background:#f4f4f4} table.nasattn td.best:first-child{background:#d9f2d9}
details.columns>summary{cursor:pointer;color:#555;font-size:.85em}
td.best{background:#d9f2d9;font-weight:bold}
p.note{color:#666;font-size:.85em} p.warn{color:#a15c00}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:.3em 0}
dl.meta dt{font-weight:bold} dl.meta dd{margin:0}
"""


def escape(value: Any) -> str:
    """HTML-escape ``str(value)`` (None -> empty)."""
    return "" if value is None else html.escape(str(value), quote=True)


def slug(text: str) -> str:
    """A string usable in an element id: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def is_number(value: Any) -> bool:
    """True for a finite int/float (not bool)."""
    if isinstance(value, bool) or value is None:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt_pct(value: Any, digits: int = 2) -> str:
    """A fraction as a percentage (0.9723 -> '97.23%'); missing -> '-'."""
    return f"{float(value) * 100:.{digits}f}%" if is_number(value) else "-"


def fmt_num(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; missing -> '-'."""
    return f"{float(value):.{digits}g}" if is_number(value) else "-"


def fmt_count(value: Any) -> str:
    """Params/FLOPs: 4293642 -> '4.29M', 1.2e9 -> '1.20G'."""
    if not is_number(value):
        return "-"
    v = float(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{unit}"
    return f"{v:.0f}"


def best_cells(df: pd.DataFrame, rules: Mapping[str, str]) -> set[tuple[int, str]]:
    """Cells ``(row position, column)`` holding the max (``"max"``) or min (``"min"``) of numeric columns."""
    out: set[tuple[int, str]] = set()
    for col, rule in rules.items():
        if col not in df.columns:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        if values.notna().sum() < 2:
            continue
        target = values.max() if rule == "max" else values.min()
        for i, v in enumerate(values):
            if pd.notna(v) and v == target:
                out.add((i, col))
    return out


def table_html(
    df: pd.DataFrame,
    table_id: str,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
    best: Iterable[tuple[int, str]] = (),
    max_rows: int | None = None,
) -> str:
    """A DataFrame as an escaped ``<table id=...>``; ``formats`` per column; ``best`` cells highlighted."""
    formats = dict(formats or {})
    best_set = set(best)
    rows = df if max_rows is None else df.head(max_rows)
    head = "".join(f"<th>{escape(c)}</th>" for c in rows.columns)
    body = []
    for i, (_, row) in enumerate(rows.iterrows()):
        cells = []
        for col in rows.columns:
            v = row[col]
            if col in formats:
                text = formats[col](v)
            elif v is None or (isinstance(v, float) and math.isnan(v)):
                text = "-"
            elif isinstance(v, float):
                text = fmt_num(v)
            else:
                text = str(v)
            cls = ' class="best"' if (i, col) in best_set else ""
            cells.append(f"<td{cls}>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if max_rows is not None and len(df) > max_rows:
        more = f'<p class="note">{len(df) - max_rows} more rows not shown.</p>'
    return (f'<div class="tablebox"><table class="nasattn" id="{escape(table_id)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{more}")


def meta_html(items: Mapping[str, Any]) -> str:
    """A definition list of ``key: value`` pairs (None values skipped)."""
    parts = [f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items.items() if v not in (None, "")]
    return f'<dl class="meta">{"".join(parts)}</dl>'


@dataclass(frozen=True)
class FileLink:
    """A note linking a file of the reported folder; its href is made relative to where the page is written."""

    path: Path

    def html(self, base: Path | None) -> str:
        """The note, with an ``<a href>`` relative to ``base`` (the page's folder; None: the file name alone)."""
        target = self.path.resolve()
        href = os.path.relpath(target, base.resolve()) if base is not None else target.name
        name = escape(target.name)
        return (f'<p class="note csv-link">Every column of every row: <a href="{escape(quote(Path(href).as_posix()))}">'
                f"{name}</a>, the file {name} in {escape(target.parent)} (a copy of this page sent on its own "
                f"does not carry it).</p>")


class Page:
    """An HTML report being built: sections of tables, figures and text; plotly.js is embedded once."""

    def __init__(self, title: str, kind: str) -> None:
        self.title = title
        self.kind = kind
        self.header: dict[str, Any] = {}
        self.footer: dict[str, Any] = {}
        self.parts: list[str | FileLink] = []
        self.ids: list[str] = []
        self._plotly_included = False

    def section(self, title: str, section_id: str | None = None, level: int = 2) -> None:
        """Start a new section: an ``<h2>`` (``level`` 3: a sub-section ``<h3>``)."""
        sid = section_id or f"sec-{slug(title)}"
        self.parts.append(f'<h{level} id="{escape(sid)}">{escape(title)}</h{level}>')

    def text(self, text: str, cls: str = "note") -> None:
        """A paragraph of (escaped) text."""
        self.parts.append(f'<p class="{cls}">{escape(text)}</p>')

    def raw(self, markup: str) -> None:
        """Already-escaped markup."""
        self.parts.append(markup)

    def table(self, df: pd.DataFrame, table_id: str, title: str | None = None, **kwargs: Any) -> None:
        """Add a table (see :func:`table_html`); empty frames become a note."""
        if title:
            self.parts.append(f"<h3>{escape(title)}</h3>")
        if df is None or df.empty:
            self.text(f"{title or table_id}: no data.")
            return
        self.ids.append(table_id)
        self.parts.append(table_html(df, table_id, **kwargs))

    def wide_table(self, df: pd.DataFrame, table_id: str, shown: list[str], csv: Path | None = None,
                   **kwargs: Any) -> None:
        """The ``shown`` columns of ``df`` as a table, every column behind a ``<details>`` toggle, and a link
        to ``csv`` (the file holding every column, when it exists)."""
        self.table(df[[c for c in shown if c in df.columns]], table_id, **kwargs)
        if df is None or df.empty or len(df.columns) <= len(shown):
            return
        kwargs.pop("best", None)
        self.parts.append(f'<details class="columns"><summary>all {len(df.columns)} columns</summary>')
        self.table(df, f"{table_id}-all", **kwargs)
        self.parts.append("</details>")
        if csv is not None and csv.is_file():
            self.parts.append(FileLink(csv))

    def figure(self, fig: Any, fig_id: str, note: str | None = None) -> None:
        """Add a plotly figure as a ``<div id=fig_id>``; None (nothing to plot) is skipped."""
        if fig is None:
            return
        markup = fig.to_html(full_html=False, include_plotlyjs=not self._plotly_included, div_id=fig_id,
                             config={"displaylogo": False, "responsive": True})
        self._plotly_included = True
        self.ids.append(fig_id)
        self.parts.append(f'<div class="figure">{markup}</div>')
        if note:
            self.text(note)

    def render(self, base: Path | None = None) -> str:
        """The whole page as one HTML string; file links relative to ``base`` (the folder it is written to)."""
        head = meta_html(self.header)
        foot = meta_html(self.footer)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(self.title)}</title><style>{CSS}</style></head><body>"
            f'<header id="report-header"><h1>{escape(self.title)}</h1>{head}</header>'
            f'<main data-kind="{escape(self.kind)}">{"".join(p if isinstance(p, str) else p.html(base) for p in self.parts)}</main>'
            f'<footer id="report-footer">{foot}</footer></body></html>\n'
        )

    def write(self, path: Path) -> Path:
        """Write the page to ``path`` (atomically: a failure leaves no temporary file) and return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_file(path, self.render(path.parent), hint="run `nasattn report` again")
