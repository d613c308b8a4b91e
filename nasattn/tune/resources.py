"""Per-trial resources shared by search and ablation files: validation, concurrency, cluster checks."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nasattn.config import ConfigError
from nasattn.tune.home import home_sink
from nasattn.tune.nodes import check_data_on_nodes
from nasattn.tune.runner import is_uri, uri_join
from nasattn.tune.session import is_embedded, ray_session


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus_per_trial: float = Field(1, gt=0)
    gpus_per_trial: float = Field(0, ge=0, description="Fractions such as 0.25 share one GPU among several trials.")
    max_concurrent: int | None = Field(None, ge=1, description="At most this many trials at once (default: what the resources allow).")
    num_cpus: int | None = Field(None, ge=1, description="Embedded Ray only: CPUs it may use (default: all).")
    num_gpus: int | None = Field(None, ge=0, description="Embedded Ray only: GPUs it may use (default: all visible).")

    @field_validator("gpus_per_trial")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if v > 1 and not float(v).is_integer():
            raise ValueError(f"more than one GPU per trial must be a whole number, got {v}")
        return v


class RayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, description="None: embedded local Ray; 'auto', 'host:port' or 'ray://host:port'.")
    storage: str | None = Field(
        None, description="Where Ray Tune keeps checkpoints and its experiment: None: the output folder; a URI every "
        "node reaches (s3://bucket/path, gs://..., any pyarrow filesystem URI); or an absolute path on a filesystem "
        "every node mounts (with shared_fs: true). Needed for checkpoints on a cluster of several nodes.")
    shared_fs: bool = Field(
        False, description="The output folder (and a storage path) is on a filesystem every node of the cluster mounts "
        "at the same path: run folders are written in place, not sent to the driver's node.")

    @field_validator("storage")
    @classmethod
    def _storage(cls, v: str | None) -> str | None:
        if v is not None and not is_uri(v) and not os.path.isabs(os.path.expanduser(v)):
            raise ValueError(f"give a URI (s3://bucket/path) or an absolute path, got {v!r}")
        return v


def tune_storage(ray: RayConfig, out: Path) -> str:
    """Tune's ``storage_path`` for a run whose output folder is ``out``: ``ray.storage`` (one folder per output
    folder inside it, the same on a resume; a URI's query, e.g. ``?endpoint_override=host:port``, kept) or
    ``out`` itself."""
    if ray.storage is None:
        return str(out)
    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:10]
    base, sep, query = (ray.storage if is_uri(ray.storage) else os.path.expanduser(ray.storage)).partition("?")
    return f"{base.rstrip('/')}/{out.name}-{key}{sep}{query}"


def tune_experiment(ray: RayConfig, out: Path, name: str) -> Path | str:
    """Where Tune's experiment ``name`` of the output folder ``out`` lives: a folder, or a URI on ``ray.storage``."""
    storage = tune_storage(ray, out)
    return uri_join(storage, name) if is_uri(storage) else Path(storage) / name


def check_storage(ray: RayConfig, nodes: int, checkpoints: str | None, source: str) -> None:
    """A ConfigError, before the first trial, when checkpoints are on (``checkpoints`` names the setting that
    turns them on, e.g. ``train.checkpoint_every``; None: off) on a Ray cluster of ``nodes`` nodes (or one
    joined through ``ray://``) and Tune's storage is a local path not declared shared: Tune's checkpoints
    would fail on every other node."""
    remote_driver = (ray.address or "").startswith("ray://")
    if checkpoints is None or ray.shared_fs or (nodes <= 1 and not remote_driver):
        return
    if ray.storage is not None and is_uri(ray.storage):
        return
    where = f"ray.storage {ray.storage!r}" if ray.storage else "the output folder"
    raise ConfigError(
        f"{source}: checkpoints are on ({checkpoints} >= 1) and the Ray cluster has {nodes} nodes, but Tune keeps them in "
        f"{where}, a local path the other nodes cannot reach. Set ray.storage to a URI every node reaches "
        "(e.g. s3://bucket/path), or put the output folder on a filesystem every node mounts at the same path and "
        f"declare it with ray.shared_fs: true, or turn checkpoints off ({checkpoints}: 0)"
    )


def alive_nodes() -> int:
    """How many nodes of the Ray this process is connected to are alive."""
    import ray as _ray  # lazy: ray is a heavy optional package

    return sum(1 for n in _ray.nodes() if n.get("Alive"))


def concurrency(res: Resources, cluster: dict[str, float]) -> int:
    """Trials at once: floor(CPUs / cpus_per_trial), and floor(GPUs / gpus_per_trial) when GPUs are asked for, capped by max_concurrent."""
    n = math.floor(cluster.get("CPU", 1) / res.cpus_per_trial + 1e-9)
    if res.gpus_per_trial:
        n = min(n, math.floor(cluster.get("GPU", 0) / res.gpus_per_trial + 1e-9))
    if res.max_concurrent:
        n = min(n, res.max_concurrent)
    return max(1, n)


def check_resources(res: Resources, cluster: dict[str, float], source: str) -> None:
    """A ConfigError naming ``source`` when one trial asks for more than the Ray cluster has."""
    cpus, gpus = cluster.get("CPU", 0), cluster.get("GPU", 0)
    if res.cpus_per_trial > cpus:
        raise ConfigError(f"{source}: resources.cpus_per_trial = {res.cpus_per_trial:g}, but the Ray cluster has {cpus:g} CPUs")
    if res.gpus_per_trial > gpus:
        raise ConfigError(
            f"{source}: resources.gpus_per_trial = {res.gpus_per_trial:g}, but the Ray cluster has {gpus:g} GPUs "
            "(set resources.gpus_per_trial: 0 to train on CPUs)"
        )


def expected_cluster(res: Resources, ray: RayConfig, data: str | None = None) -> tuple[dict[str, float], int] | None:
    """The CPUs and GPUs the Ray of a study will have and its node count, found without writing anything.

    Embedded Ray: ``num_cpus``/``num_gpus`` or what this machine has (CPU count, CUDA devices), one node.
    A cluster address: checked to answer within a few seconds, then joined briefly to read its
    resources and to check that every node can read ``data`` (a DataError naming the nodes that
    cannot; :mod:`nasattn.tune.nodes`). None when this process already runs Ray: the running one is
    used as it is.
    """
    if is_embedded(ray.address):
        cpus = res.num_cpus if res.num_cpus is not None else (os.cpu_count() or 1)
        if res.num_gpus is not None:
            gpus = res.num_gpus
        else:
            import torch

            gpus = torch.cuda.device_count()
        return {"CPU": float(cpus), "GPU": float(gpus)}, 1
    import ray as _ray  # lazy: ray is a heavy optional package

    if _ray.is_initialized():
        return None
    with ray_session(ray.address) as cluster:
        check_data_on_nodes(data)
        return dict(cluster), alive_nodes()


def preflight(res: Resources, ray: RayConfig, source: str, checkpoints: str | None = None, *,
              data: str | None = None) -> None:
    """Before a run writes anything: an unreachable ``ray.address``, a trial that cannot fit, or checkpoints
    on a cluster without a storage every node reaches (:func:`check_storage`) is a ConfigError; on a
    cluster, a node that cannot read ``data`` (the source trials load) is a DataError naming it."""
    found = expected_cluster(res, ray, data)
    if found is not None:
        check_resources(res, found[0], source)
        check_storage(ray, found[1], checkpoints, source)


@dataclass(frozen=True)
class RayStarted:
    """What ``start_ray`` got: trials at once, start-up seconds, a one-line summary of the cluster."""

    concurrency: int
    start_seconds: float
    summary: str


@contextlib.contextmanager
def start_ray(res: Resources, ray: RayConfig, source: str, *, home: Path | None = None,
              checkpoints: str | None = None, data: str | None = None) -> Iterator[RayStarted]:
    """Start an embedded Ray (or join ``ray.address``) for a study's resources and check that a trial fits
    and that checkpoints can work (:func:`check_storage`). On a cluster (not embedded, no ``ray.shared_fs``),
    ``home`` (the output folder) gets a :func:`nasattn.tune.home.home_sink`: run folders of trials on
    other nodes are sent there; ``data``, when given (runs without a :func:`preflight`), must be readable on
    every node (:func:`nasattn.tune.nodes.check_data_on_nodes`)."""
    t0 = time.time()
    with ray_session(ray.address, num_cpus=res.num_cpus, num_gpus=res.num_gpus) as cluster:
        start_s = time.time() - t0
        check_resources(res, cluster, source)
        nodes = alive_nodes()
        check_storage(ray, nodes, checkpoints, source)
        if not is_embedded(ray.address):
            check_data_on_nodes(data)
        conc = concurrency(res, cluster)
        summary = (f"ray: {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs"
                   + (f" on {nodes} nodes" if nodes > 1 else "")
                   + f" ({ray.address or 'embedded'}, started in {start_s:.1f}s)")
        with contextlib.ExitStack() as stack:
            if home is not None and not is_embedded(ray.address) and not ray.shared_fs:
                stack.enter_context(home_sink(home))
            yield RayStarted(conc, start_s, summary)
