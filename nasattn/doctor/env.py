"""The environment of the doctor's section processes."""

from __future__ import annotations

import os
from pathlib import Path

import nasattn


def child_env(**extra: str) -> dict[str, str]:
    """This environment with nasattn's folder first on PYTHONPATH (for the section processes)."""
    root = str(Path(nasattn.__file__).resolve().parents[1])
    paths = [root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}
