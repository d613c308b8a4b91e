"""The example studies and search spaces, addressable by name from a checkout or an installed wheel.

In a checkout they are the top-level ``studies/`` and ``search_spaces/`` folders; a wheel carries the
same files as ``nasattn/examples/{studies,search_spaces}`` (copied there by setup.py's build step).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from nasattn.config import ConfigError

FOLDERS = ("studies", "search_spaces")


def examples_root() -> Path:
    """The folder holding ``studies/`` and ``search_spaces/``: inside the package, else the checkout."""
    package = Path(__file__).resolve().parent
    for root in (package / "examples", package.parent):
        if (root / "studies").is_dir() and (root / "search_spaces").is_dir():
            return root
    raise ConfigError("the example studies are missing from this installation (reinstall nasattn)")


def names(folder: str) -> list[str]:
    """The names (file stems) of the bundled files in ``studies`` or ``search_spaces``."""
    try:
        return sorted(p.stem for p in (examples_root() / folder).glob("*.yaml"))
    except ConfigError:
        return []


def _resolve(value: str | Path, folder: str, what: str) -> Path:
    path = Path(value).expanduser()
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path  # a path: read (or reported missing) as given
    bundled = examples_root() / folder / f"{path.name}.yaml"
    if bundled.is_file():
        return bundled
    raise ConfigError(f"{value}: no such file, and no bundled {what} of that name; bundled: {', '.join(names(folder))}")


def resolve_study(value: str | Path) -> Path:
    """A study file path as given, or a bundled study by name (``quickstart`` -> .../studies/quickstart.yaml)."""
    return _resolve(value, "studies", "study")


def bundled_space(name: str) -> Path | None:
    """The bundled search space ``name`` (``eurosat``), or None."""
    if Path(name).suffix or len(Path(name).parts) > 1:
        return None
    try:
        path = examples_root() / "search_spaces" / f"{name}.yaml"
    except ConfigError:
        return None
    return path if path.is_file() else None


def copy_examples(dest: str | Path, *, force: bool = False) -> list[Path]:
    """Copy ``studies/`` and ``search_spaces/`` into ``dest`` for editing; returns the files written.

    Existing files are kept (a ConfigError lists them) unless ``force``.
    """
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest}: is a file, not a folder")
    root = examples_root()
    pairs = [(src, dest / folder / src.name) for folder in FOLDERS for src in sorted((root / folder).glob("*.yaml"))]
    clashes = [str(d) for _, d in pairs if d.exists()]
    if clashes and not force:
        raise ConfigError(f"{dest}: would overwrite {', '.join(clashes)}; add --force to replace them")
    written = []
    for src, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(dst)
    return written
