"""FROM and TO of an ablation path: a preset name, an architecture file, or a search trial ``SEARCH_DIR#N``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasattn.config import ConfigError, read_yaml
from nasattn.presets import list_presets, load_arch_source
from nasattn.schema import ARCH_FILE, RECIPE_FILE, STUDY_FILE, TRIALS_DIR
from nasattn.spec import ArchSpec


@dataclass
class Endpoint:
    """One end of a path: where it came from, its spec and its own recipe fields (possibly partial)."""

    label: str
    spec: ArchSpec
    recipe: dict[str, Any]


def resolve_endpoint(text: str, base_dir: Path | None = None) -> Endpoint:
    """A preset name, an ArchSpec / preset-style YAML (relative to ``base_dir``), or ``SEARCH_DIR#N``."""
    base_dir = Path(base_dir or Path.cwd())
    if "#" in text:
        folder, _, number = text.rpartition("#")
        if not number.isdigit():
            raise ConfigError(f"{text!r}: a search trial is SEARCH_DIR#N with N the trial number, e.g. runs/search/s#25")
        return search_trial(base_dir / Path(folder).expanduser(), int(number), text)
    path = base_dir / Path(text).expanduser()
    if path.is_file():
        spec, recipe = load_arch_source(path=path)
        return Endpoint(text, spec, recipe)
    if text in list_presets():
        spec, recipe = load_arch_source(preset=text)
        return Endpoint(f"preset {text}", spec, recipe)
    raise ConfigError(f"{text!r} is neither a preset ({', '.join(list_presets())}), nor an architecture file, "
                      "nor a search trial SEARCH_DIR#N")


def _study_width(search_dir: Path) -> float:
    study = read_yaml(search_dir / STUDY_FILE) if (search_dir / STUDY_FILE).is_file() else None
    if not isinstance(study, dict):
        raise ConfigError(f"{search_dir}: not a search folder (no {STUDY_FILE}); give the output folder of `nasattn search`")
    return float((study.get("train") or {}).get("width_mult", 1.0) or 1.0)


def search_trial(search_dir: Path, number: int, label: str) -> Endpoint:
    """Trial ``number`` of a search folder: ``trials/N/arch.yaml`` and ``recipe.yaml`` (as trained).

    The run folder's arch is the one trained, scaled by the study's ``train.width_mult``; a path
    applies its own width multiplier, so a study run at another width than 1 is refused with a hint.
    """
    width = _study_width(search_dir)
    run = search_dir / TRIALS_DIR / str(number)
    if not (run / ARCH_FILE).is_file():
        raise ConfigError(f"{label}: no {run / ARCH_FILE} (trial {number} never wrote a run folder)")
    if width != 1.0:
        raise ConfigError(f"{label}: {run / ARCH_FILE} holds the trial's widths after the study's width_mult {width:g}; "
                          "write the trial's unscaled arch and recipe into a file (arch: ..., recipe: ...) and give that")
    spec, _ = load_arch_source(path=run / ARCH_FILE)
    recipe = read_yaml(run / RECIPE_FILE) if (run / RECIPE_FILE).is_file() else {}
    if not isinstance(recipe, dict):
        raise ConfigError(f"{run / RECIPE_FILE}: not a mapping of recipe fields")
    return Endpoint(label, spec, recipe)
