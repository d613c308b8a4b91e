"""A watchdog that kills an embedded Ray's processes when the driver that started it dies.

Ray ties its GCS server and raylet to the driver, but its dashboard agent, runtime-env agent and
workers outlive a ``kill -9`` of the driver for a minute or two.  ``start_reaper`` launches this
module as a separate process (its own session, so a terminal's Ctrl-C does not reach it) with the
pids of the Ray processes the driver started; it follows their descendants and, once the driver is
gone or says ``stop`` after ``ray.shutdown()``, kills whatever of that tree is still running.

Run as ``python -m nasattn.tune.reaper DRIVER_PID ROOT_PID...`` (stdin: the driver's pipe).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Sequence

POLL_S = 0.5  # how often the tree is looked at for new descendants (start_reaper waits for the first look)
READY_TIMEOUT_S = 30.0  # how long start_reaper waits for the watchdog's first look at the tree
READY = b"tracking\n"


def _psutil_path() -> str:
    """The folder holding the psutil that Ray ships, for the reaper's PYTHONPATH.

    Not a public seam, and deliberately so: ``ray[tune]`` does not depend on psutil; Ray's wheel
    bundles its own copy in ``ray/thirdparty_files`` and puts that folder on ``sys.path`` when
    ``import ray`` runs. The reaper must not import Ray (a Ray import costs seconds and starts threads
    in a process that only watches pids), so it is given that folder instead; declaring psutil as a
    dependency of nasattn would add a second copy for the same job. Where psutil is installed on its
    own, this returns that copy's folder and nothing else changes.
    """
    import ray  # noqa: F401 - Ray puts its bundled psutil on sys.path (ray/thirdparty_files)
    import psutil

    return os.path.dirname(os.path.dirname(psutil.__file__))


def start_reaper(root_pids: Sequence[int]) -> subprocess.Popen:
    """Start the watchdog for the Ray processes ``root_pids`` (and their descendants) of this driver.

    Returns once the watchdog has recorded the current process tree (or after ``READY_TIMEOUT_S``): Ray's
    agents are children of the raylet, and a driver killed before that first look could leave them behind
    once the raylet is gone (they are re-parented out of the tree)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_psutil_path(), *sys.path, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nasattn.tune.reaper", str(os.getpid()), *map(str, root_pids)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True, env=env,
    )
    assert proc.stdout is not None
    if select.select([proc.stdout], [], [], READY_TIMEOUT_S)[0]:
        proc.stdout.readline()  # READY, or "" when the watchdog died
    proc.stdout.close()
    return proc


def stop_reaper(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Tell the watchdog the driver shut Ray down; it kills leftovers and exits."""
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"stop\n")
        proc.stdin.close()
    except (BrokenPipeError, OSError, ValueError):
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _track_children(tracked: dict) -> None:
    """Add every descendant of the tracked processes to ``tracked``; drop the ones that are gone.

    One pass over the process table per call (``Process.children(recursive=True)`` reads the whole table
    each time, once per tracked process: a dozen reads of it per look)."""
    import psutil

    children: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid"]):
        children.setdefault(proc.info["ppid"], []).append(proc.pid)
    for pid, proc in list(tracked.items()):
        if not proc.is_running():  # gone, or its pid now names another process
            tracked.pop(pid)
    todo = list(tracked)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in tracked:
                try:
                    tracked[child] = psutil.Process(child)
                except psutil.NoSuchProcess:
                    continue
                todo.append(child)


def _watch(driver_pid: int, roots: list[int]) -> None:
    import psutil

    tracked: dict[int, psutil.Process] = {}
    for pid in roots:
        try:
            tracked[pid] = psutil.Process(pid)
        except psutil.NoSuchProcess:
            pass
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        driver = None
    _track_children(tracked)
    try:
        sys.stdout.buffer.write(READY)  # start_reaper returns now: the tree as it is is tracked
        sys.stdout.buffer.flush()
        sys.stdout.close()
    except (BrokenPipeError, OSError, ValueError):
        pass
    while driver is not None and driver.is_running():
        _track_children(tracked)
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if ready:
            break  # "stop" after ray.shutdown(), or EOF: the driver died
    _track_children(tracked)
    for proc in tracked.values():
        try:
            proc.kill()  # psutil checks the process is still the one seen (no pid reuse)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def main(argv: Sequence[str]) -> None:
    driver_pid, *roots = (int(a) for a in argv)
    _watch(driver_pid, list(roots))


if __name__ == "__main__":
    main(sys.argv[1:])
