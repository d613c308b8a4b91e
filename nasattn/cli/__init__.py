"""The ``nasattn`` command line (typer + rich)."""
