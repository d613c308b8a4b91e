"""The check that every Ray node can read the data (nasattn.tune.nodes) and the settings that travel to nodes.

The two-node end-to-end case (a folder only the driver's node has) is in test_cluster_nodes.py; here the
decision is tested with known node answers; the probe runs for real on an embedded one-node Ray in
test_cluster_home.py (under that module's Ray).
"""

from __future__ import annotations

import pytest

from nasattn.data.dataset import DataError
from nasattn.data.sources import MINI_DIR, MINI_NAME
from nasattn.tune import nodes
from nasattn.tune.session import TRIAL_ENV_VARS, trial_runtime_env

MINI_IMAGES = sum(1 for p in MINI_DIR.rglob("*") if p.suffix.lower() == ".jpg")


def test_count_images_counts_the_listing_or_names_why_not(tmp_path):
    assert MINI_IMAGES > 0
    assert nodes.count_images(MINI_NAME) == (MINI_IMAGES, None)
    n, why = nodes.count_images(str(tmp_path / "absent"))
    assert n is None and why.startswith("FileNotFoundError: ") and "absent" in why


@pytest.mark.parametrize("answers, bad", [
    ({"10.0.0.2 (node a)": (MINI_IMAGES, None)}, []),
    ({"10.0.0.2 (node a)": (MINI_IMAGES, None), "10.0.0.3 (node b)": (None, "FileNotFoundError: no such folder")},
     ["10.0.0.3 (node b): FileNotFoundError: no such folder"]),
    ({"10.0.0.2 (node a)": (MINI_IMAGES - 1, None)}, [f"10.0.0.2 (node a): {MINI_IMAGES - 1} images, the driver {MINI_IMAGES}"]),
])
def test_every_node_that_lists_other_images_is_named(monkeypatch, answers, bad):
    monkeypatch.setattr(nodes, "trial_nodes", lambda: [])
    monkeypatch.setattr(nodes, "probe_nodes", lambda source, found: answers)
    if not bad:
        nodes.check_data_on_nodes(MINI_NAME)
        return
    with pytest.raises(DataError) as info:
        nodes.check_data_on_nodes(MINI_NAME)
    text = str(info.value)
    assert f"{len(bad)} of {len(answers)} Ray node(s)" in text
    assert [line.strip().removeprefix("Ray node ") for line in text.splitlines() if line.startswith("  Ray node")] == bad


def test_no_node_is_asked_when_the_driver_cannot_list_the_data_itself(monkeypatch, tmp_path):
    """Loading the data on the driver says what is wrong next; the nodes are not asked."""
    def asked(*_):
        raise AssertionError("nodes probed")

    monkeypatch.setattr(nodes, "probe_nodes", asked)
    nodes.check_data_on_nodes(None)
    nodes.check_data_on_nodes(str(tmp_path / "absent"))


def test_the_trial_settings_travel_and_nothing_else(monkeypatch):
    for key in TRIAL_ENV_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NASATTN_CACHE", "/cache/here")
    monkeypatch.setenv("NASATTN_MAX_MEGAPIXELS", "7")
    monkeypatch.setenv("NASATTN_STORAGE", "postgresql://u:secret@db/x")  # a storage URL's variable stays home
    assert trial_runtime_env() == {"env_vars": {"NASATTN_CACHE": "/cache/here", "NASATTN_MAX_MEGAPIXELS": "7"}}
