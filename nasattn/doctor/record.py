"""The doctor's records: JSON lines appended as checks finish, so a killed section keeps what it found."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORDS = "doctor.jsonl"
SUMMARY = "summary.txt"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


@dataclass
class Recorder:
    """Appends ``{"section", "check", "status", ...values}`` lines to ``out/doctor.jsonl``."""

    out: Path
    section: str

    def add(self, check: str, status: str, **values: Any) -> dict[str, Any]:
        row = {"section": self.section, "check": check, "status": status, "time": round(time.time(), 3), **values}
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / RECORDS, "a") as f:
            f.write(json.dumps(_clean(row)) + "\n")
        return row


def read_records(out: Path) -> list[dict[str, Any]]:
    """Every record of ``out/doctor.jsonl`` (an empty list if there is none)."""
    path = Path(out) / RECORDS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
