"""Shared test setup: a per-session data cache, so tests never write to the user's ~/.cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("NASATTN_CACHE", str(tmp_path_factory.mktemp("nasattn-cache")))
    mp.setenv("RAY_AUTH_MODE", "disabled")
    yield
    mp.undo()
