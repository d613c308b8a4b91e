"""``python -m nasattn.doctor``: the doctor with the standard library's argparse (no typer, no pydantic).

``nasattn doctor`` runs this same entry (nasattn.cli.entry). Exit 0 when every section is ok or
skipped, 1 when a check failed or a section ran over its time box, 2 on bad options.
``--bundle DIR`` builds the offline bundle instead (nasattn.doctor.bundle) and runs no section.
"""

from __future__ import annotations

import argparse
import platform
import sys

from nasattn.doctor.runner import SECTIONS, run_doctor
from nasattn.doctor.table import print_summary

DEFAULT_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")  # glibc >= 2.28; pip does not expand tags


def parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description="Check this machine's device in one time-boxed run "
                                 "(OUT/doctor.jsonl and OUT/summary.txt), or build an offline bundle (--bundle).")
    ap.add_argument("--out", default="runs/doctor", help="folder for doctor.jsonl and summary.txt")
    ap.add_argument("--gpu", action="store_true", help="require CUDA and run at full size")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (automatic without CUDA)")
    ap.add_argument("--data", default=None, help="dataset (e.g. EuroSAT_RGB.zip): a short real training; "
                                                 "with --bundle, the zip to carry in parts")
    ap.add_argument("--section", action="append", help=f"only these sections (repeatable): {', '.join(SECTIONS)}")
    ap.add_argument("--time-scale", type=float, default=1.0, help="multiply every section's time box")
    b = ap.add_argument_group("offline bundle (run where a package index is reachable)")
    b.add_argument("--bundle", default=None, metavar="DIR", help="write the bundle folder DIR and exit")
    b.add_argument("--python", default=".".join(platform.python_version_tuple()[:2]),
                   help="the target's Python major.minor (default: this one's)")
    b.add_argument("--platform", action="append", default=None,
                   help=f"target wheel platform tag, repeatable (default: {' and '.join(DEFAULT_PLATFORMS)}: "
                        "x86_64 Linux with glibc >= 2.28; for glibc 2.17-2.27 give --platform manylinux2014_x86_64)")
    b.add_argument("--part-size", default="50M", help="largest data part with --bundle --data (default 50M)")
    return ap


def _bundle(a: argparse.Namespace) -> int:
    # lazy: building a bundle needs `packaging`, which the offline machine the doctor runs on may lack
    from nasattn.doctor.bundle import BundleError, build_bundle

    try:
        bundle = build_bundle(a.bundle, python=a.python, platforms=a.platform or DEFAULT_PLATFORMS, data=a.data,
                              part_size=a.part_size, say=lambda m: print(m, flush=True))
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"bundle: {bundle.root} ({len(bundle.wheels)} wheels, {len(bundle.parts)} data parts)")
    print(f"on the offline machine: bash {bundle.root.name}/run.sh --out doctor-out   "
          "(PYTHON=/path/to/python if python3 is not the one with torch)")
    return 0


def main(argv: list[str] | None = None, prog: str = "python -m nasattn.doctor") -> int:
    ap = parser(prog)
    a = ap.parse_args(argv)
    if a.gpu and a.dry_run:
        ap.error("--gpu and --dry-run exclude each other")
    if a.bundle:
        return _bundle(a)

    try:
        result = run_doctor(a.out, gpu=a.gpu, dry_run=a.dry_run or None, data=a.data, sections=a.section,
                            scale=a.time_scale, say=lambda m: print(m, flush=True))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if print_summary(result) else 0


if __name__ == "__main__":
    sys.exit(main())
