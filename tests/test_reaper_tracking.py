"""The Ray reaper tracks every descendant of its roots and forgets processes that are gone."""

import subprocess
import sys
import time

import ray  # noqa: F401 - Ray puts its bundled psutil on sys.path (as the reaper does)
import psutil

from nasattn.tune.reaper import _track_children


def test_descendants_are_tracked_and_dead_roots_dropped():
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        root = psutil.Process(parent.pid)
        deadline = time.time() + 20
        while not root.children() and time.time() < deadline:
            time.sleep(0.05)
        tracked = {parent.pid: root}
        _track_children(tracked)
        (child,) = root.children()
        assert set(tracked) == {parent.pid, child.pid}
        child.kill()  # a zombie of the parent until the parent goes
        parent.kill()
        parent.wait(10)
        _track_children(tracked)
        assert parent.pid not in tracked
    finally:
        if parent.poll() is None:
            parent.kill()
