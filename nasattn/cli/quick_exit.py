"""A command's exit without the interpreter's final sweep over every object torch, Ray and pandas loaded.

At exit CPython clears the modules and runs full garbage collections over all the objects still alive
(about half a million once a command has imported torch, Ray, Optuna, pandas and plotly): 1.3-2 s of CPU
after the command's last line, paid by every ``nasattn`` command. :func:`skip_final_collection` freezes
the live objects (``gc.freeze``) in an ``atexit`` handler registered as the command starts: handlers that
libraries register later (Ray's shutdown, Tune's, temporary files) run first, and every handler runs as
before (freezing stops no code; the final collections just skip the frozen objects). Nothing changes while
the command runs.
"""

from __future__ import annotations

import atexit
import gc


def skip_final_collection() -> None:
    """Freeze the objects still alive at exit, after the ``atexit`` handlers registered later have run."""
    atexit.register(gc.freeze)
