"""One line to the user, on the console that a command passes down or, without one, to the log."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def say(console: Console | None, msg: str, logger: str = "nasattn") -> None:
    """Print ``msg`` on ``console`` (rich markup allowed) when given, else log it at INFO on ``logger``."""
    if console is not None:
        console.print(msg, highlight=False, soft_wrap=True)
    else:
        logging.getLogger(logger).info(msg)
