"""The environment line of every report: nasattn version, date, host, CPU, GPU."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
from pathlib import Path
from typing import Any

import nasattn


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo`` model name, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_name() -> str | None:
    """``torch.cuda.get_device_name()`` when a GPU is visible, else None (torch missing: None)."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - a broken driver must not break a report
        return None
    return None


def environment(command: str | None = None, data_source: str | None = None) -> dict[str, Any]:
    """Footer items: version, command, date, host, CPU, GPU and data source (None values are dropped)."""
    items: dict[str, Any] = {
        "nasattn": nasattn.__version__,
        "command": command,
        "data": data_source,
        "report date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "CPU": f"{cpu_name()} ({os.cpu_count()} logical cores)",
        "GPU": gpu_name() or "none",
    }
    return {k: v for k, v in items.items() if v not in (None, "")}
