"""``nasattn doctor --bundle DIR``: a folder that installs and runs the doctor on a machine without an index.

Built where a package index is reachable. ``DIR`` gets:

``wheels/``        the nasattn wheel (``pip wheel --no-deps``) and a wheel of every package the doctor's
                   code path imports besides torch (``DOCTOR_ROOTS`` and what they require), downloaded for the target
                   Python and platform (``pip download --only-binary=:all: --no-deps``); never torch
                   or torchvision, which must match the target's CUDA and are expected installed there.
``requirements.txt`` those packages by name (unpinned: a package the target already has is kept).
``data/``          optional: the dataset zip in parts of at most ``part_size`` bytes, with
                   ``SHA256SUMS`` (every part and the joined zip).
``run.sh``         installs from ``wheels/`` with ``--no-index`` into a venv of its own (with the
                   system's site packages, so the installed torch is used; a ``--target`` folder where
                   ``venv`` is unavailable), joins and checks the data parts, runs
                   ``python -m nasattn.doctor`` with its own arguments and prints where the JSON went.

Nothing in the bundle downloads at run time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import nasattn

# What ``python -m nasattn.doctor`` imports besides the standard library and torch: pydantic (specs,
# recipes), PyYAML (presets), numpy and scikit-learn (the stratified split), rich (the summary table),
# Pillow (image decoding); the bundle carries these and what they require (``requirement_closure``).
# Not typer: ``nasattn doctor`` dispatches to the argparse entry (nasattn.cli.entry). torchvision (the
# naive pipeline of the speed section) must match the target's torch: that section skips without it.
DOCTOR_ROOTS: tuple[str, ...] = ("pydantic", "PyYAML", "rich", "numpy", "pillow", "scikit-learn")
NEVER = ("torch", "torchvision", "triton")
UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}
RUN_SH = Path(__file__).with_name("run.sh")


class BundleError(ValueError):
    """The bundle cannot be built (bad option, no checkout to build the wheel from, pip failed)."""


@dataclass
class Bundle:
    """What ``build_bundle`` wrote."""

    root: Path
    wheels: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)


def parse_size(text: str) -> int:
    """Bytes of ``50M``, ``1G``, ``800K`` or a plain number (powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise BundleError(f"--part-size {text!r}: give a size such as 50M, 1G or 800K")
    return int(float(m.group(1)) * UNITS[m.group(2).upper()])


def _pip(args: Sequence[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise BundleError(f"{what} failed (pip {' '.join(args[:2])} ...): {tail}")


def project_root() -> Path:
    """The checkout nasattn is imported from (the folder with pyproject.toml); BundleError when installed."""
    root = Path(nasattn.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise BundleError(f"nasattn is imported from {root}, not a source checkout: run --bundle from a clone")
    return root


def pinned(name: str) -> str:
    """``name==version`` of the version installed here (what the tests ran), else ``name``."""
    try:
        return f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        return name


def requirement_closure(roots: Sequence[str], python: str | None = None) -> dict[str, importlib.metadata.Distribution]:
    """``roots`` and everything they require as installed here (no extras; markers for ``python``), by normalised name."""
    env = {"python_version": python} if python else {}
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        try:
            seen[key] = dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise BundleError(f"{name} is not installed here: install nasattn's dependencies before --bundle") from None
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                todo.append(req.name)
    return seen


def download_wheels(dest: Path, python: str, platforms: Sequence[str], packages: Sequence[str]) -> None:
    """One binary wheel per package for ``python`` (e.g. ``3.12``) and ``platforms`` into ``dest`` (one pip run)."""
    bad = [p for p in packages if p.lower() in NEVER]
    if bad:
        raise BundleError(f"the bundle never carries {', '.join(bad)} (the target's install must match its CUDA)")
    plat = [a for p in platforms for a in ("--platform", p)]
    _pip(["download", "--only-binary=:all:", "--no-deps", "--python-version", python, *plat, "--dest", str(dest),
          "--quiet", "--disable-pip-version-check", *map(pinned, packages)], f"downloading {', '.join(packages)}")


def build_wheel(dest: Path) -> None:
    """The nasattn wheel of this checkout (``pip wheel --no-deps``) into ``dest``."""
    _pip(["wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dest), "--quiet",
          "--disable-pip-version-check", str(project_root())], "building the nasattn wheel")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def split_file(src: Path, dest: Path, part_size: int) -> list[str]:
    """``src`` in parts ``NAME.part000``... of at most ``part_size`` bytes in ``dest``, with ``SHA256SUMS``."""
    dest.mkdir(parents=True, exist_ok=True)
    parts: list[str] = []
    with open(src, "rb") as f:
        for i, chunk in enumerate(iter(lambda: f.read(part_size), b"")):
            name = f"{src.name}.part{i:03d}"
            (dest / name).write_bytes(chunk)
            parts.append(name)
    sums = [f"{_sha256(dest / p)}  {p}" for p in parts] + [f"{_sha256(src)}  {src.name}"]
    (dest / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return parts


def build_bundle(out: str | Path, *, python: str, platforms: Sequence[str], data: str | None = None,
                 part_size: str = "50M", say: Callable[[str], None] = lambda m: None) -> Bundle:
    """Write the bundle folder ``out`` (see the module docstring); the folder must be new or empty."""
    root = Path(out).resolve()
    if root.exists() and any(root.iterdir()):
        raise BundleError(f"--bundle {root}: the folder is not empty; give a new one")
    if not re.fullmatch(r"3\.\d+", python):
        raise BundleError(f"--python {python!r}: give the target's major.minor version, e.g. 3.12")
    size = parse_size(part_size)
    src = Path(data) if data else None
    if src is not None and not src.is_file():
        raise BundleError(f"--data {data}: not a file (give the dataset zip, e.g. EuroSAT_RGB.zip)")
    wheels = root / "wheels"
    wheels.mkdir(parents=True)
    say(f"building the nasattn wheel from {project_root()} ...")
    build_wheel(wheels)
    packages = sorted(d.metadata["Name"] for d in requirement_closure(DOCTOR_ROOTS, python).values())
    say(f"downloading {len(packages)} wheels for Python {python} on {', '.join(platforms)}: {', '.join(packages)} ...")
    download_wheels(wheels, python, platforms, packages)
    (root / "requirements.txt").write_text("\n".join(packages) + "\n")
    bundle = Bundle(root=root, wheels=sorted(p.name for p in wheels.iterdir()))
    if src is not None:
        say(f"splitting {src.name} into parts of at most {part_size} ...")
        bundle.parts = split_file(src, root / "data", size)
    shutil.copyfile(RUN_SH, root / "run.sh")
    (root / "run.sh").chmod((root / "run.sh").stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bundle
