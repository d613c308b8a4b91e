"""Shared test setup: a per-session data cache (tests never write to the user's ~/.cache), one Ray per module."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("NASATTN_CACHE", str(tmp_path_factory.mktemp("nasattn-cache")))
    mp.setenv("RAY_AUTH_MODE", "disabled")
    yield
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
