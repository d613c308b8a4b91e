"""Run folders come home: a trial on another node of the cluster sends its run folder to the driver's disk.

A study on a multi-node Ray cluster starts one :class:`HomeSink` actor pinned to the driver's node
(:func:`home_sink`). A trial that finds the sink on another node than its own (:func:`trip`) writes its
run folder into a scratch folder on its node and, when it ends (finished or failed), sends the
folder's files through Ray's object store to the sink, which writes them under the output folder as a
whole (:func:`nasattn.safewrite.replace_folder`: never half-written; DONE arrives with the files it
vouches for) and the scratch folder goes. A trial on the driver's node, or with no sink (an embedded
Ray, a declared shared filesystem), writes its run folder in place as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nasattn.config import ConfigError
from nasattn.safewrite import replace_folder
from nasattn.schema import DONE_MARKER, ERROR_FILE, RUN_FILES

SINK_NAME = "nasattn-home"
"""The sink's actor name in the driver's job namespace (trials of that job find it by this name)."""
AWAY_ROOT = "nasattn-away"
"""Scratch folder (under the node's temporary directory) where a trial away from home writes its run."""
REPLACED = (*RUN_FILES, DONE_MARKER, ERROR_FILE)
"""A run folder's files that an arriving run replaces (an earlier attempt's never survive beside it)."""


class HomeWriter:
    """Writes run folders sent from other nodes under ``root`` (the output folder), each as a whole.

    ``node_id`` is the node that counts as home (default: the node this runs on).
    """

    def __init__(self, root: str, node_id: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.node_id = node_id or current_node()

    def home(self) -> str:
        """The node id of home."""
        return self.node_id

    def done(self, run_dir: str) -> str | None:
        """The DONE marker's text of the run folder ``run_dir`` at home (a finished run), else None."""
        marker = Path(run_dir).resolve() / DONE_MARKER
        if not marker.resolve().is_relative_to(self.root) or not marker.is_file():
            return None
        return marker.read_text()

    def receive(self, run_dir: str, files: dict[str, bytes]) -> str:
        """Write ``files`` (relative name -> bytes) as the run folder ``run_dir``; returns the folder.

        A folder outside ``root`` or a name that leaves the folder is a ConfigError; nothing is written then.
        """
        folder = Path(run_dir).resolve()
        if not folder.is_relative_to(self.root):
            raise ConfigError(f"home: {run_dir} is not inside the output folder {self.root}; not written")
        for name in files:
            if Path(name).is_absolute() or (folder / name).resolve().parent != folder:
                raise ConfigError(f"home: {name!r} is not a file name inside a run folder; {run_dir} not written")
        replace_folder(folder, files, replaced=REPLACED)
        return str(folder)


def current_node() -> str:
    """The hex id of the Ray node this process runs on."""
    import ray  # lazy: ray is a heavy optional package

    return ray.get_runtime_context().get_node_id()


def node_label() -> str:
    """``node <ip> (<id prefix>)`` of the Ray node this process runs on; ``""`` outside Ray."""
    try:
        import ray  # lazy: ray is a heavy optional package

        if not ray.is_initialized():
            return ""
        return f"node {ray.util.get_node_ip_address()} ({current_node()[:8]})"
    except Exception:  # noqa: BLE001 - a label only: never fail a trial for it
        return ""


@contextlib.contextmanager
def home_sink(root: Path, node_id: str | None = None) -> Iterator[object]:
    """Start the :class:`HomeSink` actor for ``root`` on this (the driver's) node; stopped at exit.

    ``node_id`` overrides which node counts as home (tests: a single node that plays away).
    """
    import ray  # lazy: ray is a heavy optional package
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # lazy: ray

    here = current_node()
    sink = ray.remote(HomeWriter).options(
        name=SINK_NAME, num_cpus=0, max_concurrency=4,  # num_cpus=0: fits a head started with --num-cpus=0
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
    ).remote(str(root), node_id or here)
    ray.get(sink.home.remote())  # started (and its name registered) before the first trial looks for it
    try:
        yield sink
    finally:
        ray.kill(sink)


@dataclass
class Trip:
    """A trial away from home: its run folder is written to ``local`` and sent to ``home`` by ``sink``;
    ``done``: the DONE marker's text of a run already finished at home (the trial only re-reports it)."""

    home: Path
    local: Path
    sink: object
    done: str | None = None

    def send(self) -> None:
        """Send every file of ``local`` to the sink (written as ``home``), then remove ``local``."""
        import ray  # lazy: ray is a heavy optional package

        if not self.local.is_dir():
            return
        files = {p.name: p.read_bytes() for p in sorted(self.local.iterdir()) if p.is_file()}
        ray.get(self.sink.receive.remote(str(self.home), files))  # type: ignore[attr-defined]
        shutil.rmtree(self.local, ignore_errors=True)


def trip(home: Path | None, trial_id: str) -> Trip | None:
    """The trip of a trial whose run folder is ``home``: None when it runs on the driver's node or no
    sink was started (write in place)."""
    import ray  # lazy: ray is a heavy optional package

    if home is None or not ray.is_initialized():  # outside Ray (get_actor would start one)
        return None
    try:
        sink = ray.get_actor(SINK_NAME)
    except ValueError:  # no sink (embedded Ray, a shared filesystem): write in place
        return None
    if ray.get(sink.home.remote()) == current_node():
        return None
    local = Path(tempfile.gettempdir()) / AWAY_ROOT / f"{os.getpid()}-{trial_id}"
    shutil.rmtree(local, ignore_errors=True)
    return Trip(home=home, local=local, sink=sink, done=ray.get(sink.done.remote(str(home))))
