"""The ``nasattn`` console script: ``nasattn doctor`` runs the argparse doctor (standard library, torch
and the doctor's bundle only: no typer, no config import); every other command runs the typer app."""

from __future__ import annotations

import sys

from nasattn.cli.quick_exit import skip_final_collection
from nasattn.doctor.__main__ import main as doctor_main


def main() -> None:
    skip_final_collection()
    if sys.argv[1:2] == ["doctor"]:
        sys.exit(doctor_main(sys.argv[2:], prog="nasattn doctor"))
    try:
        from nasattn.cli.main import app  # lazy: `nasattn doctor` (routed above) runs without pydantic
    except ImportError as e:  # a machine with only the doctor's bundle installed
        print(f"error: nasattn's command line needs {e.name or e} ({e}); install nasattn with its dependencies "
              "(pip install nasattn), or run `nasattn doctor`, which needs only the doctor bundle", file=sys.stderr)
        sys.exit(2)
    app()
