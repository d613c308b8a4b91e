"""``nasattn report FOLDER``: a self-contained HTML report of a run, search or ablation folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nasattn.cli.common import console, fail
from nasattn.safewrite import DiskError, disk_error


def report(
    folder: Path = typer.Argument(..., help="A folder written by nasattn train, search or ablate."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output HTML file (default: FOLDER/report.html)."),
) -> None:
    """Write a self-contained HTML report (plotly figures, tables) of a run, search or ablation folder."""
    from nasattn.report import NotANasattnFolder, detect_kind, render_report

    try:
        kind = detect_kind(folder)
        path = render_report(folder, out)
    except NotANasattnFolder as e:
        raise fail(str(e)) from None
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise fail(f"{e.filename or folder}: {e.strerror or e}") from None
    except (DiskError, OSError) as e:  # a full or read-only disk: one line, nothing half-written
        raise fail(str(disk_error(e, out or folder, hint=f"run `nasattn report {folder}` again") or e)) from None
    console.print(f"wrote {path} ({kind} report)", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``report`` to the nasattn CLI."""
    app.command("report")(report)
