"""A two-node Ray cluster on one machine whose nodes share no disk, for tests (imported, not a conftest).

The head (``127.0.0.1``) has ``--num-cpus=0``, so no trial can run on it; the worker node
(``127.0.0.2``) runs inside a private mount namespace (``unshare --mount --propagation private``)
with an empty tmpfs mounted over each of the folders the test names (the run's ``--out``, the data
cache, a data folder ...): the worker sees its own disk there, as a second machine would, while
the driver (a ``nasattn`` subprocess run outside the namespace with ``ray: {address: ...}``) and
the head see the real folders. Every port is chosen free, Ray's temporary folder is a private one
(so ``ray start`` records this cluster there, not in ``/tmp/ray`` where other clusters' ``auto``
looks), the nodes get no ``NASATTN_*`` settings of the test process, and at the end exactly the
processes this module started are stopped by their process groups (never ``ray stop``, which would
stop every Ray on the machine).

Use::

    with two_node_cluster([out, cache, data]) as cluster:   # skips when namespaces are not allowed
        run nasattn with ray.address = cluster.address
        cluster.on_worker("ls", str(out))                    # what the worker node sees there
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

HEAD_IP = "127.0.0.1"
WORKER_IP = "127.0.0.2"  # all of 127.0.0.0/8 is loopback on Linux: a second address for the second node
START_TIMEOUT_S = 120.0
OBJECT_STORE_BYTES = 200 * 1024 * 1024  # per node; Ray's minimum is 75 MiB, its default 30% of the memory

# Waits, in its own Python (no Ray state in the test process), until the cluster has `n` alive nodes.
_WAIT_FOR_NODES = """
import sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
deadline = time.time() + float(sys.argv[3])
while time.time() < deadline:
    alive = [n for n in ray.nodes() if n["Alive"]]
    if len(alive) >= int(sys.argv[2]):
        print(" ".join(sorted(n["NodeManagerAddress"] for n in alive)))
        sys.exit(0)
    time.sleep(0.5)
sys.exit(f"{len(alive)} of {sys.argv[2]} Ray nodes alive after {sys.argv[3]} s")
"""


@dataclass(frozen=True)
class TwoNodes:
    """A running two-node cluster: ``address`` for ``ray.address``, and a way into the worker's view."""

    address: str
    worker_pid: int
    private: tuple[Path, ...]

    def on_worker(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``cmd`` in the worker node's mount namespace (it sees the worker's tmpfs folders)."""
        return subprocess.run(["nsenter", "-t", str(self.worker_pid), "-m", "--", *cmd],
                              capture_output=True, text=True, timeout=timeout)

    def worker_files(self, folder: Path) -> list[str]:
        """The files under ``folder`` as the worker node sees them (paths relative to ``folder``)."""
        res = self.on_worker("find", str(folder), "-type", "f")
        if res.returncode != 0:
            return []
        return sorted(os.path.relpath(line, folder) for line in res.stdout.splitlines() if line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HEAD_IP, 0))
        return s.getsockname()[1]


def namespaces_unavailable() -> str | None:
    """Why this machine cannot run the worker node in a private mount namespace (None: it can)."""
    if os.geteuid() != 0:
        return "a two-node cluster needs root (unshare --mount and tmpfs mounts)"
    for tool in ("unshare", "mount", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if _ray_cli() is None:
        return "the ray command is not installed beside this Python"
    with tempfile.TemporaryDirectory(prefix="twonode-probe-") as d:
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", d],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            return f"private mount namespaces are not allowed here: {probe.stderr.strip() or probe.returncode}"
    return None


def _ray_cli() -> str | None:
    return shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")


def _node_env(ray_tmp: Path, home: Path | None = None) -> dict[str, str]:
    """The environment of a Ray node: the test's, minus every NASATTN_* setting (another machine has none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NASATTN_") and k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(ray_tmp), TMPDIR=str(ray_tmp),
               RAY_worker_niceness="0", RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO="1",
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")  # a test cluster stops at once, no 30 s drain
    if home is not None:
        env["HOME"] = str(home)
    return env


def _port_args() -> list[str]:
    """Free ports for everything a node listens on (two nodes on one machine must not share one)."""
    names = ("node-manager-port", "object-manager-port", "metrics-export-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "runtime-env-agent-port")
    return [f"--{name}={free_port()}" for name in names]


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    """SIGTERM to the process groups of the ``ray start --block`` commands (each stops the processes it
    started), all at once; SIGKILL to a group still there after a minute."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for_nodes(address: str, n: int, procs: Sequence[subprocess.Popen], logs: Sequence[Path]) -> None:
    """Until ``n`` nodes are alive; a RuntimeError with the nodes' log tails when a node exits or time runs out."""
    deadline = time.time() + START_TIMEOUT_S
    while _connect_fails(address) and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.5)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    res = None
    if all(p.poll() is None for p in procs):
        res = subprocess.run([sys.executable, "-c", _WAIT_FOR_NODES, address, str(n), str(START_TIMEOUT_S)],
                             capture_output=True, text=True, timeout=START_TIMEOUT_S + 30, env=env)
    dead = [p.args[0] for p in procs if p.poll() is not None]
    if res is None or res.returncode != 0 or dead:
        tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in logs if log.exists())
        why = res.stderr.strip()[-500:] if res is not None else "a node exited"
        raise RuntimeError(f"two-node cluster did not start ({why}; exited: {dead})\n{tails}")


def _connect_fails(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) != 0


@contextlib.contextmanager
def two_node_cluster(private: Sequence[Path], *, worker_cpus: int = 2) -> Iterator[TwoNodes]:
    """Start the head (0 CPUs) and a worker node (``worker_cpus``) that sees an empty tmpfs at each of
    ``private`` (created when missing); yield the cluster; stop both. Skips the test when this machine
    does not allow it."""
    reason = namespaces_unavailable()
    if reason is not None:
        pytest.skip(reason)
    ray = _ray_cli()
    # short: Ray's unix sockets live under it, and their paths are limited to about 107 characters
    ray_tmp = Path(tempfile.mkdtemp(prefix="twonode-", dir="/tmp"))
    port = free_port()
    address = f"{HEAD_IP}:{port}"
    common = ["--block", "--disable-usage-stats", f"--object-store-memory={OBJECT_STORE_BYTES}"]
    head_log, worker_log = ray_tmp / "head.log", ray_tmp / "worker.log"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_start([ray, "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", "--num-cpus=0",
                             "--include-dashboard=false", *common, *_port_args()],
                            _node_env(ray_tmp), head_log))
        folders = [Path(p) for p in private]
        for p in folders:
            p.mkdir(parents=True, exist_ok=True)
        home = ray_tmp / "worker-home"  # the worker's own home (its ~/.cache), also private
        home.mkdir()
        mounts = " && ".join(f"mount -t tmpfs tmpfs '{p}'" for p in [*folders, home])
        worker = [ray, "start", f"--address={address}", f"--node-ip-address={WORKER_IP}", f"--num-cpus={worker_cpus}",
                  *common, *_port_args()]
        script = f"{mounts} && exec {' '.join(worker)}"
        procs.append(_start(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            _node_env(ray_tmp, home), worker_log))
        _wait_for_nodes(address, 2, procs, [head_log, worker_log])
        yield TwoNodes(address, procs[1].pid, tuple(folders))
    finally:
        _stop(procs[::-1])
        shutil.rmtree(ray_tmp, ignore_errors=True)
