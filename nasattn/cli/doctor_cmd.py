"""``nasattn doctor``: check a (new GPU) machine in one time-boxed run; JSON lines and a table."""

from __future__ import annotations

import typer

from nasattn.cli.common import console, handle_user_errors
from nasattn.config import ConfigError
from nasattn.schema import ExitCode


def doctor(
    out: str = typer.Option("runs/doctor", "--out", help="Folder for doctor.jsonl (one JSON record per line)."),
    gpu: bool = typer.Option(False, "--gpu", help="Require CUDA (exit 2 without it) and run at full size."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Tiny sizes on the CPU (automatic without CUDA)."),
    data: str | None = typer.Option(None, "--data", help="Also run a short real training on this dataset."),
    section: list[str] | None = typer.Option(None, "--section", help="Only these sections (repeatable)."),
    scale: float = typer.Option(1.0, "--time-scale", min=0.1, help="Multiply every section's time box."),
) -> None:
    """Environment, correctness, syncs, speed, packing and compile checks on this machine's device.

    Each section runs in its own process under a time box (at most about 9 minutes in all on one
    GPU) and records its own errors in OUT/doctor.jsonl; exit 1 when a check failed or a section ran
    over its box, 2 on bad options.  `python -m nasattn.doctor` does the same without typer.
    """
    _doctor(out, gpu, dry_run, data, section, scale)


@handle_user_errors
def _doctor(out: str, gpu: bool, dry_run: bool, data: str | None, section: list[str] | None, scale: float) -> None:
    from nasattn.doctor import run_doctor
    from nasattn.doctor.table import print_summary

    if gpu and dry_run:
        raise ConfigError("--gpu and --dry-run exclude each other")
    try:
        result = run_doctor(out, gpu=gpu, dry_run=dry_run or None, data=data, sections=section, scale=scale,
                            say=lambda m: console.print(f"[dim]{m}[/]", highlight=False))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if print_summary(result, console):
        raise typer.Exit(ExitCode.FAILED)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
