"""Self-contained HTML reports of nasattn folders: a training run, a search, or an ablation.

``render_report(folder)`` detects the kind of folder and writes ``folder/report.html`` (one file,
plotly.js embedded once, no external scripts). Partial folders render what exists.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Callable

from nasattn.config import NasattnError
from nasattn.safewrite import DiskError
from nasattn.schema import ABLATION_CSV, ABLATION_JSON, METRICS_FILE, PATH_JSON, REPORT_FILE, STUDY_DB, STUDY_FILE, TRIALS_CSV

KINDS = ("run", "search", "ablation", "path")


class NotANasattnFolder(NasattnError, FileNotFoundError):
    """The folder is not a train run, search or ablation folder written by nasattn."""


def detect_kind(folder: str | Path) -> str:
    """``"ablation"`` (ablation.csv/ablation.json), ``"path"`` (path.json of ``nasattn ablate --path``),
    ``"search"`` (trials.csv, study.yaml or study.db) or ``"run"``."""
    d = Path(folder)
    if not d.is_dir():
        raise NotANasattnFolder(f"{d}: no such folder")
    if (d / ABLATION_CSV).is_file() or (d / ABLATION_JSON).is_file():
        return "ablation"
    if (d / PATH_JSON).is_file():
        return "path"
    if any((d / f).is_file() for f in (TRIALS_CSV, STUDY_FILE, STUDY_DB)):
        return "search"
    if (d / METRICS_FILE).is_file():
        return "run"
    raise NotANasattnFolder(
        f"{d}: not a nasattn folder (expected {METRICS_FILE} of a train run, {TRIALS_CSV}/{STUDY_FILE} of a search, "
        f"or {ABLATION_CSV} of an ablation)"
    )


def render_report(folder: str | Path, out: Path | None = None) -> Path:
    """Write the HTML report of ``folder`` to ``out`` (default ``folder/report.html``) and return its path."""
    d = Path(folder)
    kind = detect_kind(d)
    if kind == "run":
        from nasattn.report.run import render_run as build  # lazy: one report's plotting stack
    elif kind == "search":
        from nasattn.report.search import render_search as build  # lazy: one report's plotting stack
    elif kind == "path":
        from nasattn.report.ablation_path import render_path as build  # lazy: one report's plotting stack
    else:
        from nasattn.report.ablation import render_ablation as build  # lazy: one report's plotting stack
    target = Path(out) if out is not None else d / REPORT_FILE
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name, e.g. " + str(target / REPORT_FILE), str(target))
    page = build(d)
    return page.write(target)


def render_report_safely(folder: str | Path, warn: Callable[[str], None] | None = None) -> tuple[Path | None, str | None]:
    """``render_report(folder)`` for the end of a search or ablation: (path, None), or (None, why it failed).

    The results stand without their report, so a failure is returned (and passed to ``warn``); only a full
    or read-only disk is raised (DiskError: one line saying what to free), since the run cannot go on either.
    """
    try:
        return render_report(folder), None
    except DiskError:
        raise
    except Exception as e:  # noqa: BLE001
        error = f"report failed: {type(e).__name__}: {e}"
        if warn is not None:
            warn(error)
        return None, error


__all__ = ["KINDS", "NotANasattnFolder", "detect_kind", "render_report", "render_report_safely"]
