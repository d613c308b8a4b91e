"""``python -m nasattn.doctor``: the doctor with the standard library's argparse (no typer, no pydantic).

Same options as ``nasattn doctor``; exit 0 when every section is ok or skipped, 1 when a check
failed or a section ran over its time box, 2 on bad options.
"""

from __future__ import annotations

import argparse
import sys

from nasattn.doctor.runner import SECTIONS, run_doctor


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nasattn.doctor", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/doctor", help="folder for doctor.jsonl")
    ap.add_argument("--gpu", action="store_true", help="require CUDA and run at full size")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (automatic without CUDA)")
    ap.add_argument("--data", default=None, help="also run a short real training on this dataset")
    ap.add_argument("--section", action="append", choices=list(SECTIONS), help="only these sections (repeatable)")
    ap.add_argument("--time-scale", type=float, default=1.0, help="multiply every section's time box")
    a = ap.parse_args(argv)
    if a.gpu and a.dry_run:
        ap.error("--gpu and --dry-run exclude each other")
    from nasattn.doctor.table import print_summary

    try:
        result = run_doctor(a.out, gpu=a.gpu, dry_run=a.dry_run or None, data=a.data, sections=a.section,
                            scale=a.time_scale, say=lambda m: print(m, flush=True))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if print_summary(result) else 0


if __name__ == "__main__":
    sys.exit(main())
