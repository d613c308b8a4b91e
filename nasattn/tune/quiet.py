"""Ray Tune's trial-error logging, quiet for the errors nasattn reports itself in one line.

Tune logs every failed trial with its traceback ("Trial task failed for trial T", logger
``ray.tune.execution.tune_controller``) and, at the end, "Trials did not complete: [T, ...]" (logger
``ray.tune.tune``). For a full or read-only disk nasattn prints one line naming the device and what to
free, so a :class:`logging.Filter` on those two loggers drops the records of such trials; every other
trial error is still logged as Tune logs it. Only the standard ``logging`` API is used.
"""

from __future__ import annotations

import logging

from nasattn.safewrite import disk_error

TRIAL_ERROR_LOGGER = "ray.tune.execution.tune_controller"
SUMMARY_LOGGER = "ray.tune.tune"
_TRIAL_ERROR = "Trial task failed for trial "
_SUMMARY = "Trials did not complete"


class HandledTrialErrors(logging.Filter):
    """Drops Tune's log records of trials that failed on a full or read-only disk."""

    def __init__(self) -> None:
        super().__init__()
        self.trials: set[str] = set()  # the trials whose error was dropped

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        if message.startswith(_TRIAL_ERROR) and error is not None and disk_error(error) is not None:
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
