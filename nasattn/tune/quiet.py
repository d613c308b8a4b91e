"""Ray Tune's trial-error logging, quiet for the errors nasattn reports itself in one line.

Tune logs every failed trial with its traceback ("Trial task failed for trial T", logger
``ray.tune.execution.tune_controller``) and, at the end, "Trials did not complete: [T, ...]" (logger
``ray.tune.tune``). nasattn prints one line for a trial that failed with one of its own errors (a
:class:`~nasattn.config.NasattnError`: a diverged loss, a GPU Ray assigned without CUDA, ...) or on a
full or read-only disk (naming the device and what to free), so a :class:`logging.Filter` on those two
loggers drops the records of such trials; any other trial error (a bug, in nasattn or in a user's
block) is still logged with its traceback, as Tune logs it. Only the standard ``logging`` API is used.
"""

from __future__ import annotations

import logging

from nasattn.config import NasattnError
from nasattn.safewrite import disk_error

TRIAL_ERROR_LOGGER = "ray.tune.execution.tune_controller"
SUMMARY_LOGGER = "ray.tune.tune"
_TRIAL_ERROR = "Trial task failed for trial "
_SUMMARY = "Trials did not complete"


def reported_in_one_line(error: BaseException) -> bool:
    """Whether nasattn reports this trial error in one line: a NasattnError, or a full or read-only disk
    (the error itself, or the trial's exception inside Ray's task error: ``cause``, ``__cause__``)."""
    # the explicit chain only (not disk_error's __context__ too): a bug raised while handling one of
    # nasattn's errors is still a bug, and keeps its traceback
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NasattnError):
            return True
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return disk_error(error) is not None


class HandledTrialErrors(logging.Filter):
    """Drops Tune's log records of trials whose error nasattn reports in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.trials: set[str] = set()  # the trials whose error was dropped

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        if message.startswith(_TRIAL_ERROR) and error is not None and reported_in_one_line(error):
            self.trials.add(message[len(_TRIAL_ERROR):])
            return False
        if record.msg == f"{_SUMMARY}: %s" and isinstance(record.args, tuple) and record.args:
            names = {str(t) for t in record.args[0]}
            return not (names and names <= self.trials)
        return True


def quiet_handled_trial_errors() -> HandledTrialErrors:
    """Install (once) the filter on Tune's trial-error loggers; returns it."""
    loggers = [logging.getLogger(TRIAL_ERROR_LOGGER), logging.getLogger(SUMMARY_LOGGER)]
    for f in loggers[0].filters:
        if isinstance(f, HandledTrialErrors):
            return f
    handled = HandledTrialErrors()
    for logger in loggers:
        logger.addFilter(handled)
    return handled
