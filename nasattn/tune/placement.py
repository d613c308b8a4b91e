"""Which device a Tune trial trains on (the GPUs Ray assigned it, else the CPU), and a record of it.

Ray leaves ``CUDA_VISIBLE_DEVICES`` untouched for a task given no GPU, so such a trial would
see every GPU of the machine; the device is therefore chosen from ``ray.get_gpu_ids()``, never from
what CUDA happens to show.  ``placement.json`` in the trial's run folder records the choice.

Test-only switches (environment variables, read in the trial process; set them before Ray starts):

``NASATTN_TRIAL_DEVICE``   force every trial onto this device (e.g. ``cpu``), so that scheduling
                           on logical GPUs (``ray.init(num_gpus=2)``) can be tested without CUDA.
``NASATTN_TEST_RENDEZVOUS`` ``DIR,N,TIMEOUT_S``: each trial touches ``DIR/<trial id>`` and waits until
                           N trials did so (or TIMEOUT_S passed), so a test can see how many run at once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nasattn.config import NasattnError
from nasattn.schema import ENV_TEST_RENDEZVOUS, ENV_TRIAL_DEVICE, PLACEMENT_FILE



class TrialDeviceError(NasattnError, RuntimeError):
    """The trial's device does not match what Ray assigned it (e.g. a GPU assigned but no CUDA)."""


def choose_device(
    requested: str,
    gpu_ids: Sequence[str],
    trial: str,
    cuda_available: Callable[[], bool],
    forced: str | None = None,
) -> str:
    """The device a trial trains on.

    ``forced`` (the test switch) wins.  ``auto``: ``cuda`` when Ray assigned GPUs, else ``cpu``.
    ``cuda``/``cuda:N`` without an assigned GPU, or any assigned GPU without CUDA in the process
    (for ``auto`` or ``cuda``), raise :class:`TrialDeviceError` naming the trial and the assignment.
    """
    if forced:
        return forced
    wants_cuda = requested == "auto" and bool(gpu_ids) or requested.startswith("cuda")
    if not wants_cuda:
        return "cpu" if requested == "auto" else requested
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    assignment = f"Ray assigned GPU ids {list(gpu_ids)} (CUDA_VISIBLE_DEVICES={visible!r})"
    if not gpu_ids:
        raise TrialDeviceError(
            f"trial {trial}: device {requested!r} but Ray assigned it no GPU; "
            "set resources.gpus_per_trial above 0 (e.g. 0.25) or device: auto"
        )
    if not cuda_available():
        raise TrialDeviceError(
            f"trial {trial}: {assignment}, but CUDA is not available in the trial process "
            "(a CUDA build of torch and a driver are needed on that node; set resources.gpus_per_trial: 0 to train on CPUs)"
        )
    return "cuda" if requested == "auto" else requested


def assigned_gpu_ids() -> list[str]:
    """``ray.get_gpu_ids()`` as strings (empty outside Ray or when none was assigned)."""
    import ray  # lazy: ray is a heavy optional package

    if not ray.is_initialized():
        return []
    return [str(g) for g in ray.get_gpu_ids()]


def trial_device(requested: str, trial: str) -> tuple[str, dict[str, Any]]:
    """Choose the device for the running trial; returns it and the placement record."""
    gpu_ids = assigned_gpu_ids()
    forced = os.environ.get(ENV_TRIAL_DEVICE) or None

    def cuda_available() -> bool:
        import torch

        return torch.cuda.is_available()

    device = choose_device(requested, gpu_ids, trial, cuda_available, forced)
    record = {
        "trial": trial,
        "requested": requested,
        "device": device,
        "forced": forced is not None,
        "gpu_ids": gpu_ids,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "pid": os.getpid(),
        "started": time.time(),
    }
    return device, record


def write_placement(run_dir: Path | None, record: dict[str, Any]) -> None:
    """Write (or rewrite) ``run_dir/placement.json``."""
    if run_dir is None:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (PLACEMENT_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(run_dir / PLACEMENT_FILE)


def rendezvous(trial: str) -> None:
    """Test-only: wait for ``N`` trials at the folder named by ``NASATTN_TEST_RENDEZVOUS`` (see module doc)."""
    spec = os.environ.get(ENV_TEST_RENDEZVOUS)
    if not spec:
        return
    folder, n, timeout = spec.split(",")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / trial).touch()
    deadline = time.time() + float(timeout)
    while time.time() < deadline and sum(1 for _ in path.iterdir()) < int(n):
        time.sleep(0.05)
