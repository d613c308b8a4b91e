"""The doctor's summary on the terminal (rich only, so it works where typer or pydantic are missing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from nasattn.doctor.runner import DoctorResult, summary_rows

if TYPE_CHECKING:
    from rich.console import Console

STYLE = {"ok": "green", "fail": "bold red", "error": "bold red", "timeout": "yellow", "skipped": "dim"}


def print_summary(result: DoctorResult, console: Console | None = None) -> list[str]:
    """Print the table of every check; returns the sections with a problem (fail, error, timeout)."""
    console = console or Console()
    kind = "dry run, CPU, tiny sizes" if result.dry else f"{result.device}, full sizes"
    table = Table(title=f"nasattn doctor ({kind}; {result.seconds:.0f} s)", title_justify="left")
    for col in ("section", "check", "status", "values"):
        table.add_column(col, overflow="fold")
    for sec, check, status, values in summary_rows(result.records):
        table.add_row(sec, check, f"[{STYLE.get(status, '')}]{status}[/]", values)
    console.print(table)
    console.print(f"records: {result.out / 'doctor.jsonl'}", highlight=False)
    bad = [s for s, st in result.section_status.items() if st in ("fail", "error", "timeout")]
    if bad:
        console.print(f"[bold red]problems in: {', '.join(bad)}[/]")
    return bad
