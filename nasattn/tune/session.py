"""Starting or joining Ray: an embedded local Ray for one process, or an existing cluster."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Iterator

from nasattn.config import ConfigError
from nasattn.schema import ENV_CACHE, ENV_DATA, ENV_MAX_MEGAPIXELS, ENV_PRESETS, ENV_TEST_RENDEZVOUS, ENV_TRIAL_DEVICE
from nasattn.tune.quiet import quiet_handled_trial_errors
from nasattn.tune.reaper import start_reaper, stop_reaper

# Ray Tune writes its experiment snapshot at most every ~10 s by default; a lower interval keeps
# the window in which a finished trial is missing from the snapshot (and re-run after a kill -9) short.
_TUNE_ENV_DEFAULTS = {
    "TUNE_GLOBAL_CHECKPOINT_S": "1",
    "RAY_AIR_NEW_OUTPUT": "0",  # the live table is ours; keep Tune's own reporter out of the way
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "0",
    "RAY_DEDUP_LOGS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000000",
    # Ray starts its workers at nice 15, so on a busy machine every other process starves the trials.
    # Trials are the work a search exists for: run them at normal priority.
    "RAY_worker_niceness": "0",
    # Ray leaves CUDA_VISIBLE_DEVICES alone for tasks given 0 GPUs (they would see every GPU);
    # with this set, a trial without a GPU sees none (the trial also picks its device from ray.get_gpu_ids()).
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1",
    # By default Ray starts one idle Python worker per CPU when the driver connects, used or not (Tune's trial
    # actors started their own here, Ray 2.60): start workers when work asks for them (each unused one cost
    # ~0.6 s of CPU and ~80 MB here).
    "RAY_prestart_worker_first_driver": "0",
    # A trial that failed just before a Ctrl-C leaves an error Tune never fetched; at shutdown Ray logs its
    # whole traceback as an "Unhandled error". nasattn reports the trial errors Tune takes in itself (the
    # trial's line, trials.csv, ablation.csv), so the driver keeps Ray's copy out of the output.
    "RAY_IGNORE_UNHANDLED_ERRORS": "1",
}
CONNECT_TIMEOUT_S = 3.0
# The settings a trial reads from its environment. On a cluster, the driver's values travel to every
# node in the job's runtime environment (a node's own shell has none of them); nothing else does
# (a storage URL's variable may hold a password, and trials never open the study storage).
TRIAL_ENV_VARS = (ENV_CACHE, ENV_DATA, ENV_MAX_MEGAPIXELS, ENV_PRESETS, ENV_TRIAL_DEVICE, ENV_TEST_RENDEZVOUS)


def _apply_env_defaults() -> None:
    for key, value in _TUNE_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def trial_runtime_env() -> dict:
    """The job's Ray runtime environment on a cluster: the driver's :data:`TRIAL_ENV_VARS` that are set."""
    return {"env_vars": {k: os.environ[k] for k in TRIAL_ENV_VARS if k in os.environ}}


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
    ``"host:port"`` connect to an existing cluster, which is left running at exit (the driver's
    :data:`TRIAL_ENV_VARS` travel to its nodes in the job's runtime environment); an address where
    nothing answers within a few seconds is a ConfigError naming it.  The embedded Ray's processes
    are reaped by a watchdog (:mod:`nasattn.tune.reaper`) when this process dies.  A Ray that is
    already initialised in this process is reused and left alone.
    """
    import ray  # lazy: ray is a heavy optional package

    _apply_env_defaults()
    quiet_handled_trial_errors()  # a trial on a full disk: nasattn's one line, not Tune's traceback
    if ray.is_initialized():
        yield ray.cluster_resources()
        return
    log_level = logging.ERROR if quiet else logging.INFO
    kwargs: dict = dict(logging_level=log_level, log_to_driver=not quiet, configure_logging=True)
    if is_embedded(address):
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        reaper = _init_embedded(num_cpus, num_gpus, kwargs)
        try:
            yield ray.cluster_resources()
        finally:
            ray.shutdown()
            if reaper is not None:
                stop_reaper(reaper)
    else:
        target = resolve_address(address)
        check_reachable(address, target)
        try:
            ray.init(address=target, runtime_env=trial_runtime_env(), **kwargs)
        except (ConnectionError, RuntimeError, TimeoutError) as e:
            raise ConfigError(f"ray.address {address!r}: could not connect to the Ray cluster at {target} ({e})") from None
        try:
            yield ray.cluster_resources()
        finally:
            ray.shutdown()  # disconnects this driver; the cluster keeps running


def _init_embedded(num_cpus: int | None, num_gpus: int | None, kwargs: dict):
    """``ray.init`` a private Ray without dashboard; returns the watchdog that reaps it if this process dies."""
    import ray  # lazy: ray is a heavy optional package

    before = _child_pids()
    # address="local": always a new private Ray, never a cluster that `ray start` left on this machine
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, **kwargs)
    roots = sorted(_child_pids() - before)
    if not roots:
        return None
    return start_reaper(roots)


def _child_pids() -> set[int]:
    import psutil
    import ray  # noqa: F401 - Ray puts its bundled psutil on sys.path

    return {p.pid for p in psutil.Process().children()}


def _ray_temp_dir() -> Path:
    """Where ``ray start`` writes ``ray_current_cluster`` (Ray's rule: RAY_TMPDIR, TMPDIR, /tmp)."""
    base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(base) / "ray"


def resolve_address(address: str) -> str:
    """``auto`` -> ``$RAY_ADDRESS`` or the cluster ``ray start`` recorded on this machine; others as given.

    Unlike Ray's own ``auto``, another process's private (embedded) Ray is never joined.
    """
    if address != "auto":
        return address
    env = os.environ.get("RAY_ADDRESS")
    if env and env != "auto":
        return env
    recorded = _ray_temp_dir() / "ray_current_cluster"
    if recorded.is_file() and recorded.read_text().strip():
        return recorded.read_text().strip()
    raise ConfigError(
        "ray.address 'auto': no Ray cluster found (RAY_ADDRESS is not set and no cluster was started with "
        "`ray start --head` on this machine); start one, give its host:port, or set ray.address: null for an embedded Ray"
    )


def _host_port(target: str) -> tuple[str, int] | None:
    rest = target.split("://", 1)[1] if "://" in target else target
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def check_reachable(address: str, target: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A ConfigError naming ``address`` when nothing accepts a TCP connection at ``target`` within ``timeout``."""
    hp = _host_port(target)
    if hp is None:
        raise ConfigError(f"ray.address {address!r}: expected 'auto', 'host:port' or 'ray://host:port'")
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as e:
        shown = address if target == address else f"{address} -> {target}"
        raise ConfigError(
            f"ray.address {shown!r}: no Ray cluster answers at {hp[0]}:{hp[1]} within {timeout:g} s ({e.strerror or e}); "
            "start it with `ray start --head`, or set ray.address: null for an embedded Ray"
        ) from None
