"""One line to the user, on the console that a command passes down or, without one, to the log."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

LOG_WIDTH = 160  # columns of tables printed into a log or a pipe (rich's default there is 80)


def make_console(stderr: bool = False) -> Console:
    """A rich Console: the terminal's width on a terminal, else ``$COLUMNS`` or ``LOG_WIDTH`` (so tables in
    logs are not cut at 80 columns)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS") or LOG_WIDTH)
    return Console(stderr=stderr, width=width)


def say(console: Console | None, msg: str, logger: str = "nasattn") -> None:
    """Print ``msg`` on ``console`` (rich markup allowed) when given, else log it at INFO on ``logger``."""
    if console is not None:
        console.print(msg, highlight=False, soft_wrap=True)
    else:
        logging.getLogger(logger).info(msg)
