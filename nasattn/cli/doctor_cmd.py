"""``nasattn doctor`` inside the typer app: forwards its arguments to the argparse doctor.

The console script sends ``nasattn doctor`` straight to ``nasattn.doctor.__main__`` (nasattn.cli.entry),
so the doctor never needs typer or pydantic; this command lists it in ``nasattn --help`` and serves
``python -m nasattn.cli.main doctor`` with the same options.
"""

from __future__ import annotations

import typer

from nasattn.doctor.__main__ import main as doctor_main


def doctor(ctx: typer.Context) -> None:
    """Check this machine's device (env, correctness, syncs, speed, packing, compile; OUT/doctor.jsonl), or build
    an offline bundle with --bundle DIR. Options: nasattn doctor --help."""
    raise typer.Exit(doctor_main(list(ctx.args), prog="nasattn doctor"))


def register(app: typer.Typer) -> None:
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                  "help_option_names": []}, add_help_option=False)(doctor)
