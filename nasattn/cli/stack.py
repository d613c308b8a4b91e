"""The check that torch and torchvision come from one build, made before a command trains anything."""

from __future__ import annotations

import importlib
import importlib.metadata

import typer

from nasattn.cli.common import fail

ONE_INDEX = ("install both from one index: pip install --force-reinstall torch torchvision "
             "--index-url https://download.pytorch.org/whl/cpu (CPU-only), or the same without --index-url (GPU)")


def check_torch_stack() -> None:
    """Exit 2 with one line when torchvision's compiled operators do not load beside this torch.

    A torchvision built for another torch imports, but ``torchvision.ops`` then fails (e.g. ``operator
    torchvision::nms does not exist``): the first training would die with a long traceback.
    """
    try:
        importlib.import_module("torchvision.ops")
    except Exception as e:  # noqa: BLE001 - RuntimeError (missing operator), ImportError/OSError (undefined symbol)
        raise _mismatch(e) from None


def _mismatch(error: BaseException) -> typer.Exit:
    import torch

    try:
        version = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return fail(f"torch {torch.__version__} and torchvision {version} do not work together "
                f"(importing torchvision.ops: {first}); {ONE_INDEX}")
