"""Starting or joining Ray: an embedded local Ray for one process, or an existing cluster."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

# Ray Tune writes its experiment snapshot at most every ~10 s by default; a lower interval keeps
# the window in which a finished trial is missing from the snapshot (and re-run after a kill -9) short.
_TUNE_ENV_DEFAULTS = {
    "TUNE_GLOBAL_CHECKPOINT_S": "1",
    "RAY_AIR_NEW_OUTPUT": "0",  # the live table is ours; keep Tune's own reporter out of the way
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "0",
    "RAY_DEDUP_LOGS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000000",
    # Ray starts its workers at nice 15, so on a busy laptop every other process starves the trials
    # (measured here: a 1.4 s training took 190 s as a trial beside one CPU-bound process). Trials are
    # the work a search exists for: run them at normal priority.
    "RAY_worker_niceness": "0",
}


def _apply_env_defaults() -> None:
    for key, value in _TUNE_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def is_embedded(address: str | None) -> bool:
    """``None``/``""``/``"local"`` mean: start a private Ray in this process."""
    return address in (None, "", "local")


@contextlib.contextmanager
def ray_session(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    *,
    quiet: bool = True,
) -> Iterator[dict]:
    """Run the body with Ray initialised; yields ``ray.cluster_resources()``.

    ``address=None`` starts an embedded local Ray (``num_cpus``/``num_gpus`` cap what it sees,
    no dashboard, token auth off) and shuts it down at exit.  ``"auto"``, ``"ray://host:port"`` or
    ``"host:port"`` connect to an existing cluster, which is left running at exit.  A Ray that is
    already initialised in this process is reused and left alone.
    """
    import ray

    _apply_env_defaults()
    if ray.is_initialized():
        yield ray.cluster_resources()
        return
    log_level = logging.ERROR if quiet else logging.INFO
    kwargs: dict = dict(logging_level=log_level, log_to_driver=not quiet, configure_logging=True)
    if is_embedded(address):
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, **kwargs)
        try:
            yield ray.cluster_resources()
        finally:
            ray.shutdown()
    else:
        ray.init(address=address, **kwargs)
        try:
            yield ray.cluster_resources()
        finally:
            ray.shutdown()  # disconnects this driver; the cluster keeps running
