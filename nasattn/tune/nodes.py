"""Before the first trial on a Ray cluster: every node that can run a trial finds the data the driver found.

Trials load their data themselves, on whichever node Ray places them, from the source the driver
resolved (a bundled name such as ``eurosat-mini`` travels by name; a folder or zip by its absolute
path). A node without that path would fail every trial placed there, so :func:`check_data_on_nodes`
lists the source on every alive node with CPUs (one tiny Ray task pinned to each node with
``NodeAffinitySchedulingStrategy``, run in the job's runtime environment) and refuses, naming each
node and the path, when a node cannot list it or sees a different number of images.
"""

from __future__ import annotations

from typing import Any

PROBE_TIMEOUT_S = 120.0  # a node's first task starts a Python and imports torch; a busy node is slow


def count_images(source: str) -> tuple[int | None, str | None]:
    """``(number of image files, None)`` that ``source`` lists here, or ``(None, "Type: message")``."""
    from nasattn.data.sources import list_images  # lazy: torch-side floor; tune's run-file parsing stays torch-free

    try:
        return len(list_images(source)[0]), None
    except Exception as e:  # noqa: BLE001 - every reason a node cannot read the data is reported, by name
        return None, f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def trial_nodes() -> list[dict[str, Any]]:
    """The alive nodes of the connected Ray cluster that have CPUs (the head of a cluster may have none)."""
    import ray  # lazy: ray is a heavy optional package

    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]


def probe_nodes(source: str, nodes: list[dict[str, Any]]) -> dict[str, tuple[int | None, str | None]]:
    """:func:`count_images` of ``source`` on each of ``nodes`` (node address -> result), run there."""
    import ray  # lazy: ray is a heavy optional package
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # lazy: ray, as above

    from nasattn.data.dataset import DataError  # lazy: torch-side floor, as in count_images

    probe = ray.remote(num_cpus=0, max_retries=0)(count_images)
    refs = {_node_name(n): probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(source)
            for n in nodes}
    try:
        values = ray.get(list(refs.values()), timeout=PROBE_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        raise DataError(f"data {source}: the Ray nodes did not answer within {PROBE_TIMEOUT_S:g} s whether they can read it "
                        f"({', '.join(refs)})") from None
    return dict(zip(refs, values))


def _node_name(node: dict[str, Any]) -> str:
    return f"{node['NodeManagerAddress']} (node {node['NodeID'][:12]})"


def check_data_on_nodes(source: str | None) -> None:
    """A DataError naming every node of the connected cluster that cannot list ``source`` as the driver does.

    Nothing is checked for ``None`` (trials read ``$NASATTN_DATA``, which travels in the runtime
    environment) or when the driver itself cannot list the source (loading it says why, next).
    """
    from nasattn.data.dataset import DataError  # lazy: torch-side floor, as in count_images

    if source is None:
        return
    expected, error = count_images(source)
    if error is not None:
        return
    found = probe_nodes(source, trial_nodes())
    bad = [f"  Ray node {node}: {why}" if why is not None else f"  Ray node {node}: {n} images, the driver {expected}"
           for node, (n, why) in found.items() if why is not None or n != expected]
    if bad:
        raise DataError(
            f"data {source}: {len(bad)} of {len(found)} Ray node(s) that run trials cannot read it as the driver does "
            f"({expected} images):\n" + "\n".join(bad) + "\n"
            "Every node that runs trials reads the data at the same path: copy it to that path on each node, or "
            "put it on a filesystem every node mounts there (the bundled eurosat-mini needs no copy)."
        )
