"""Running the doctor: every section in its own process under a time box, then a summary table."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nasattn.doctor.env import child_env
from nasattn.doctor.record import RECORDS, SUMMARY, Recorder, read_records
from nasattn.doctor.sections import Context

# Seconds per section on a GPU (about 9 minutes without --data, 17 with it); a dry run gets the same boxes.
SECTIONS: dict[str, float] = {
    "env": 30, "correctness": 100, "syncs": 45, "speed": 100, "packing": 90, "compile": 100, "data": 60,
    "accuracy": 420,
}
NEEDS_DATA = ("data", "accuracy")


@dataclass
class DoctorResult:
    out: Path
    device: str
    dry: bool
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def section_status(self) -> dict[str, str]:
        return {r["section"]: r["status"] for r in self.records if r["check"] == "section"}


def pick_device(gpu: bool, dry_run: bool | None) -> tuple[str, bool]:
    """``(device, dry)``: CUDA when present unless ``dry_run``; without CUDA always a dry run on the CPU.

    ``gpu=True`` without CUDA is a ValueError (the user asked for a GPU check on a machine without one).
    """
    import torch

    has_cuda = torch.cuda.is_available()
    if gpu and not has_cuda:
        raise ValueError("--gpu: CUDA is not available here (torch.cuda.is_available() is False); "
                         "run `nasattn doctor --dry-run` for the CPU dry run")
    if dry_run or not has_cuda:
        return "cpu", True
    return "cuda", False


def run_doctor(
    out: str | Path,
    *,
    gpu: bool = False,
    dry_run: bool | None = None,
    data: str | None = None,
    sections: Sequence[str] | None = None,
    scale: float = 1.0,
    say: Callable[[str], None] | None = None,
) -> DoctorResult:
    """Run the sections (default: all; ``data`` and ``accuracy`` only with ``data``) and return every record.

    Each section runs as ``python -m nasattn.doctor.sections`` with a timeout of its box times
    ``scale``; a section that runs over is killed and recorded as ``timeout`` (its finished checks kept).
    """
    say = say or (lambda msg: None)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if (out / RECORDS).exists():
        (out / RECORDS).unlink()
    names = list(sections) if sections else [s for s in SECTIONS if s not in NEEDS_DATA or data]
    unknown = [n for n in names if n not in SECTIONS]
    if (out / SUMMARY).exists():
        (out / SUMMARY).unlink()
    if unknown:  # before pick_device: a typo is refused without importing torch
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; allowed: {', '.join(SECTIONS)}")
    device, dry = pick_device(gpu, dry_run)
    t_all = time.time()
    for name in names:
        box = SECTIONS[name] * scale
        ctx = Context(out=str(out), device=device, dry=dry, data=data, deadline=time.time() + box - 5, section=name)
        say(f"{name} (at most {box:.0f} s) ...")
        rec = Recorder(out, name)
        t0 = time.time()
        try:
            proc = subprocess.run([sys.executable, "-m", "nasattn.doctor.sections", name, json.dumps(asdict(ctx))],
                                  capture_output=True, text=True, timeout=box, env=child_env(), check=False)
        except subprocess.TimeoutExpired:
            rec.add("section", "timeout", seconds=round(time.time() - t0, 1), box_seconds=box)
            continue
        took = round(time.time() - t0, 1)
        if proc.returncode == 3:
            reason = json.loads(proc.stdout.strip().splitlines()[-1])["skipped"]
            rec.add("section", "skipped", seconds=took, reason=reason)
        elif proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            rec.add("section", "error", seconds=took, error=" | ".join(tail))
        else:
            checks = [r for r in read_records(out) if r["section"] == name]
            bad = [r for r in checks if r["status"] in ("fail", "error")]
            rec.add("section", "fail" if bad else "ok", seconds=took, checks=len(checks), failed=len(bad))
    result = DoctorResult(out=out, device=device, dry=dry, records=read_records(out), seconds=time.time() - t_all)
    (out / SUMMARY).write_text(summary_text(result))
    return result


_SHOWN = ("device_name", "torch", "cuda_build", "bf16_supported", "train_loss", "max_abs_weight_difference",
          "difference", "syncs", "engine_images_per_second", "naive_images_per_second", "ratio", "peak_memory_mib",
          "images_per_second_total", "train_graph_breaks", "eval_graph_breaks", "speedup", "compile_seconds",
          "recompiles", "test_accuracy", "seconds_to_target", "stopped", "best_test_accuracy", "best_at_seconds",
          "achieved_tflops", "missing", "reason", "error")


def summary_rows(records: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(section, check, status, the main values) for a table."""
    rows = []
    for r in records:
        vals = []
        for k in _SHOWN:
            if k in r and r[k] not in (None, [], ""):
                v = r[k]
                vals.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
        if r["check"] == "section":
            vals.insert(0, f"{r.get('seconds', 0)} s")
        rows.append((r["section"], r["check"], r["status"], ", ".join(vals)[:300]))
    return rows


def summary_text(result: DoctorResult) -> str:
    """The summary as plain text (one line per check, then the sections with a problem): OUT/summary.txt."""
    kind = "dry run, CPU, tiny sizes" if result.dry else f"{result.device}, full sizes"
    lines = [f"nasattn doctor ({kind}; {result.seconds:.0f} s); records: {result.out / RECORDS}"]
    lines += [f"{sec:12s} {check:28s} {status:8s} {values}" for sec, check, status, values in summary_rows(result.records)]
    bad = [s for s, st in result.section_status.items() if st in ("fail", "error", "timeout")]
    lines.append(f"problems in: {', '.join(bad)}" if bad else "no problems")
    return "\n".join(lines) + "\n"
