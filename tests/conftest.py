"""Shared test setup: a per-session data cache (tests never write to the user's ~/.cache), torch threads
shared out between the xdist workers, one Ray per module."""

from __future__ import annotations

import compileall
import os
import sys
from pathlib import Path

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """Compile nasattn's sources once, before the workers start, when Python is told not to write bytecode
    (PYTHONDONTWRITEBYTECODE): otherwise every Python process the suite starts (CLI commands, Ray trials)
    compiles each nasattn module it imports again, about 0.2 s of CPU per process."""
    if sys.dont_write_bytecode and not hasattr(config, "workerinput"):  # the xdist controller, or no xdist
        compileall.compile_dir(Path(__file__).resolve().parents[1] / "nasattn", quiet=1)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("NASATTN_CACHE", str(tmp_path_factory.mktemp("nasattn-cache")))
    mp.setenv("RAY_AUTH_MODE", "disabled")
    # Each of n xdist workers gets cores/n torch (OpenMP) threads, and so do the commands it starts: with two
    # workers on two cores, two threads each made in-process training 3-4 times slower (threads spinning
    # for a core another process holds). Ray trials set their own (their cpus_per_trial).
    threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    mp.setenv("OMP_NUM_THREADS", str(threads))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield
    torch.set_num_threads(before)
    mp.undo()


@pytest.fixture(scope="module")
def module_ray():
    """One embedded Ray (2 CPUs) shared by the in-process searches of a test module, stopped after it.

    ``run_search`` reuses a Ray that is already initialised, so a module's searches pay one Ray start
    instead of a Python, torch and Ray start each (tests of the CLI itself still run it in a subprocess).
    """
    from nasattn.tune import ray_session

    with ray_session(None, num_cpus=2) as resources:
        yield resources


# The slowest modules first (measured: ``--durations``; each takes 1-2.5 minutes on 2 cores). The test command
# runs xdist with ``--dist loadfile --no-loadscope-reorder``, which hands files out in collection order: one of
# these handed out last kept a worker busy for two minutes after the other had finished.
SLOW_MODULES = (
    "test_doctor.py", "test_search.py", "test_cluster_nodes.py", "test_gpu_scheduling.py", "test_search_schedulers.py",
    "test_resume.py", "test_resume_hyperband.py", "test_cluster_home.py", "test_interrupts.py", "test_fidelity.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: every file keeps its own order
