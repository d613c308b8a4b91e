"""CPU census of a command: core-seconds per kind of process, for every process that ran while it did.

    PYTHONPATH=.venv/lib/python3.11/site-packages/ray/thirdparty_files \
        .venv/bin/python reports/suite-cpu/census.py CMD...

Looks at every process every 0.3 s (psutil; Ray ships it), remembers each one's last CPU time and the names
it went by (a Ray worker starts as ``ray::IDLE`` and becomes ``ray::ImplicitFunc`` when it runs a trial), and
prints, per kind, the CPU it used while CMD ran and how many processes it counts. A process that lived less
than a look is missed, so the total is a lower bound.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time

import psutil

KINDS = ("ray::ImplicitFunc", "ray::_Inner", "ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent", "raylet",
         "gcs_server", "dashboard.py", "log_monitor", "monitor.py", "nasattn.tune.reaper", "nasattn.doctor.sections",
         "nasattn.doctor", "nasattn.cli", "moto.server", "chromium", "postgres", "pip", "ray start", "xdist", "pytest",
         "-c", "ray::")


def kind(cmdline: str) -> str:
    return next((k for k in KINDS if k in cmdline), cmdline[:50])


def cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def main(cmd: list[str]) -> None:
    before = {}
    for proc in psutil.process_iter():
        try:
            before[proc.pid] = cpu(proc)
        except psutil.Error:
            pass
    child = subprocess.Popen(cmd)
    last: dict[int, float] = {}
    names: dict[int, set[str]] = {}
    while child.poll() is None:
        for proc in psutil.process_iter():
            try:
                last[proc.pid] = cpu(proc)
                line = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if line:
                names.setdefault(proc.pid, set()).add(kind(line))
        time.sleep(0.3)
    used: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    for pid, seconds in last.items():
        name = "/".join(sorted(names.get(pid, {"?"})))
        used[name] += seconds - before.get(pid, 0.0)
        count[name] += 1
    for name, seconds in used.most_common(30):
        print(f"{seconds:7.1f} {count[name]:4d} {name}")
    print("total", round(sum(used.values()), 1))


if __name__ == "__main__":
    main(sys.argv[1:])
