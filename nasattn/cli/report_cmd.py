"""``nasattn report FOLDER``: a self-contained HTML report of a run, search or ablation folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nasattn.cli.common import console, fail, handle_user_errors
from nasattn.config import ConfigError
from nasattn.report import NotANasattnFolder, detect_kind, render_report
from nasattn.safewrite import DiskError, disk_error
from nasattn.schema import REPORT_FILE


def report(
    folder: Path = typer.Argument(..., help="A folder written by nasattn train, search or ablate."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=f"Output HTML file (default: FOLDER/{REPORT_FILE})."),
) -> None:
    """Write a self-contained HTML report (plotly figures, tables) of a run, search or ablation folder."""
    _report(folder, out)


@handle_user_errors
def _report(folder: Path, out: Path | None) -> None:
    try:
        kind = detect_kind(folder)
        path = render_report(folder, out)
    except NotANasattnFolder:
        raise
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise ConfigError(f"{e.filename or folder}: {e.strerror or e}") from None
    except (DiskError, OSError) as e:  # a full or read-only disk: one line, nothing half-written
        raise fail(str(disk_error(e, out or folder, hint=f"run `nasattn report {folder}` again") or e)) from None
    console.print(f"wrote {path} ({kind} report)", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``report`` to the nasattn CLI."""
    app.command("report")(report)
