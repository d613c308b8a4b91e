"""Per-trial resources shared by search and ablation files: validation, concurrency, cluster checks."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nasattn.config import ConfigError
from nasattn.tune.nodes import check_data_on_nodes
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


def expected_cluster(res: Resources, ray: RayConfig, data: str | None = None) -> dict[str, float] | None:
    """The CPUs and GPUs the Ray of a study will have, found without writing anything.

    Embedded Ray: ``num_cpus``/``num_gpus`` or what this machine has (CPU count, CUDA devices).
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
        return {"CPU": float(cpus), "GPU": float(gpus)}
    import ray as _ray  # lazy: ray is a heavy optional package

    if _ray.is_initialized():
        return None
    with ray_session(ray.address) as cluster:
        check_data_on_nodes(data)
        return dict(cluster)


def preflight(res: Resources, ray: RayConfig, source: str, data: str | None = None) -> None:
    """Before a run writes anything: an unreachable ``ray.address`` or a trial that cannot fit is a ConfigError;
    on a cluster, a node that cannot read ``data`` (the source trials load) is a DataError naming it."""
    cluster = expected_cluster(res, ray, data)
    if cluster is not None:
        check_resources(res, cluster, source)


@dataclass(frozen=True)
class RayStarted:
    """What ``start_ray`` got: trials at once, start-up seconds, a one-line summary of the cluster."""

    concurrency: int
    start_seconds: float
    summary: str


@contextlib.contextmanager
def start_ray(res: Resources, ray: RayConfig, source: str, data: str | None = None) -> Iterator[RayStarted]:
    """Start an embedded Ray (or join ``ray.address``) for a study's resources and check that a trial fits
    (and, on a cluster, that every node can read ``data``, when given: runs without a :func:`preflight`)."""
    t0 = time.time()
    with ray_session(ray.address, num_cpus=res.num_cpus, num_gpus=res.num_gpus) as cluster:
        start_s = time.time() - t0
        check_resources(res, cluster, source)
        if not is_embedded(ray.address):
            check_data_on_nodes(data)
        conc = concurrency(res, cluster)
        summary = (f"ray: {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs "
                   f"({ray.address or 'embedded'}, started in {start_s:.1f}s)")
        yield RayStarted(conc, start_s, summary)
