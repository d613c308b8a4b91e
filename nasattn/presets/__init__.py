"""Presets: the paper's architectures (and any user's) as YAML files, the one source of their facts.

Each preset is one YAML file: ``name``, ``description``, ``arch`` (an ArchSpec), ``recipe`` (a training
Recipe), ``paper`` (the numbers the paper reports), ``profile`` (params, FLOPs, layers of the built
model for a 64x64 image and 10 classes; tests check them against the model), ``paper_protocol``
(the fields the author's code sets and ``--protocol paper`` applies), ``choices`` (values the author's
code does not fix: nasattn's choice) and ``differences`` (what still differs from the author's code).

Files are looked up in the built-in folder beside this module, then in the folders of
``$NASATTN_PRESETS`` (separated by ``os.pathsep``), then in those given to ``register_preset_dir``;
the first file of a name wins. Adding a preset is adding one file.

Listing (``list_presets``, ``read_preset``) reads YAML only and imports no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasattn.config import ConfigError, read_yaml
from nasattn.schema import ENV_PRESETS
from nasattn.recipe import Recipe
from nasattn.spec import ArchSpec

PRESET_DIR = Path(__file__).parent
_registered: list[Path] = []


def register_preset_dir(path: str | Path) -> None:
    """Look for preset files in ``path`` too (after the built-in folder and ``$NASATTN_PRESETS``)."""
    p = Path(path).expanduser().resolve()
    if p not in _registered:
        _registered.append(p)


def preset_dirs() -> list[Path]:
    """The folders searched for ``<name>.yaml``, in order."""
    env = [Path(d).expanduser() for d in os.environ.get(ENV_PRESETS, "").split(os.pathsep) if d]
    return [PRESET_DIR, *env, *_registered]


def _files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in preset_dirs():
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            found.setdefault(path.stem, path)
    return found


PAPER_ORDER = ("baseline", "cbam", "balanced")  # the paper's iterations 1, 2, 3


def list_presets() -> list[str]:
    """Names of every preset file: the paper's in its order (PAPER_ORDER), then any others by name."""
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    return sorted(_files(), key=lambda name: (rank.get(name, len(rank)), name))


def preset_path(name: str) -> Path:
    files = _files()
    if name not in files:
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(sorted(files))}")
    return files[name]


def read_preset(name: str) -> dict[str, Any]:
    """A preset file's content as a mapping, unvalidated (no torch import)."""
    path = preset_path(name)
    data = read_yaml(path)
    if not isinstance(data, dict) or "arch" not in data:
        raise ConfigError(f"{path}: a preset file is a mapping with at least an 'arch:' section")
    return data


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    arch: ArchSpec
    recipe_dict: dict[str, Any]
    paper: dict[str, float] = field(default_factory=dict)
    profile: dict[str, int] = field(default_factory=dict)
    paper_protocol: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)
    path: Path | None = None

    @property
    def recipe(self) -> Recipe:
        return Recipe.model_validate(self.recipe_dict)


def get_preset(name: str) -> Preset:
    """The preset ``name``, its arch validated as an ArchSpec."""

    data = read_preset(name)
    path = preset_path(name)
    return Preset(
        name=name,
        description=data.get("description", ""),
        arch=ArchSpec.from_dict(data["arch"], str(path)),
        recipe_dict=dict(data.get("recipe") or {}),
        paper=dict(data.get("paper") or {}),
        profile=dict(data.get("profile") or {}),
        paper_protocol=dict(data.get("paper_protocol") or {}),
        choices=dict(data.get("choices") or {}),
        differences=list(data.get("differences") or []),
        path=path,
    )


def load_arch_source(preset: str | None = None, path: str | Path | None = None) -> tuple[ArchSpec, dict[str, Any]]:
    """The (spec, recipe fields) of a preset or of an architecture file (exactly one of the two).

    An architecture file is an ArchSpec mapping, or a preset-style file with ``arch:`` (and ``recipe:``);
    a bare spec has no recipe fields. Errors are ConfigErrors naming the file.
    """

    if (preset is None) == (path is None):
        raise ConfigError("give exactly one of a preset name or an architecture file")
    if preset is not None:
        p = get_preset(preset)
        return p.arch, dict(p.recipe_dict)
    path = Path(path)  # type: ignore[arg-type]
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an architecture file must be a mapping")
    if "arch" in raw:
        recipe = raw.get("recipe") or {}
        if not isinstance(recipe, dict):
            raise ConfigError(f"{path}: recipe: must be a mapping of recipe fields")
        return ArchSpec.from_dict(raw["arch"], str(path)), dict(recipe)
    return ArchSpec.from_dict(raw, str(path)), {}


__all__ = ["ENV_PRESETS", "PAPER_ORDER", "PRESET_DIR", "Preset", "get_preset", "list_presets", "load_arch_source",
           "preset_dirs", "preset_path", "read_preset", "register_preset_dir"]
