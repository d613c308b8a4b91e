"""The paper's three architectures (baseline, cbam, balanced) as specs plus training recipes.

Each preset is a YAML file beside this module: ``arch`` (an ArchSpec), ``recipe`` (a training Recipe),
``paper`` (the numbers the paper reports) and a header comment on how it restates the author's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasattn.config import ConfigError, read_yaml
from nasattn.spec import ArchSpec

PRESET_DIR = Path(__file__).parent
PRESET_NAMES = ("baseline", "cbam", "balanced")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    arch: ArchSpec
    recipe_dict: dict[str, Any]
    paper: dict[str, float] = field(default_factory=dict)

    @property
    def recipe(self):  # -> nasattn.engine.Recipe (imported lazily: presets need no training stack)
        from nasattn.engine import Recipe

        return Recipe.model_validate(self.recipe_dict)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def get_preset(name: str) -> Preset:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(list_presets())}")
    data = read_yaml(path)
    return Preset(
        name=name,
        description=data.get("description", ""),
        arch=ArchSpec.from_dict(data["arch"], str(path)),
        recipe_dict=dict(data.get("recipe", {})),
        paper=dict(data.get("paper", {})),
    )
