"""Training protocols: named sets of recipe and architecture fields, in one place.

- ``default``: changes nothing (the preset's recipe: stratified split, its augmentation, its precision).
- ``paper``: the paper author's code (virAditya/satellite-image-classification-eurosat): the author's
  random split (``stratify: false``, ratios 0.7/0.15/0.15, seed 42: ``torch.utils.data.random_split``
  over ImageFolder's order), the author's augmentation (``augment: paper``), ImageNet normalisation,
  the author's precision for a preset (its file's ``paper_protocol`` section: ``balanced`` fp16,
  ``baseline`` and ``cbam`` float32, as their configs set no mixed precision), and for an
  architecture with a DropBlock the author's DropBlock law (``dropblock.law: paper``) and initialisation (``init: paper``).
- ``paper-as-run``: ``paper`` without augmentation (``augment: none``). The author's loader sets the
  test transform on the dataset object that all three splits share, so the published training ran
  without augmentation; this protocol measures what that changed.

``apply_protocol(name, spec, recipe_dict)`` returns the spec and recipe dict with the protocol's
fields set; fields given afterwards (``--epochs``, ``--set``) still override them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nasattn.config import ConfigError
from nasattn.presets import list_presets, read_preset

if TYPE_CHECKING:
    from nasattn.spec import ArchSpec

AUTHOR_SPLIT: dict[str, Any] = {"stratify": False, "split_seed": 42, "split_ratios": [0.7, 0.15, 0.15]}


def author_fields(name: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recipe and arch fields of preset ``name``'s ``paper_protocol`` section (its YAML file is the one
    source: the author's precision, DropBlock law, ...); empty for a spec that is no preset."""

    if not name or name not in list_presets():
        return {}, {}
    section = read_preset(name).get("paper_protocol") or {}
    return dict(section.get("recipe") or {}), dict(section.get("arch") or {})


@dataclass(frozen=True)
class Protocol:
    """A protocol: the recipe fields it sets, whether it uses the author's precision and DropBlock law."""

    name: str
    description: str
    recipe: Mapping[str, Any] = field(default_factory=dict)
    author_precision: bool = False
    author_arch: bool = False


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("default", "the preset's recipe unchanged (stratified split)"),
        Protocol(
            "paper",
            "the author's code: random split (seed 42), the author's augmentation, ImageNet normalisation, "
            "the author's precision, DropBlock law and initialisation",
            {**AUTHOR_SPLIT, "augment": "paper", "normalize": "imagenet"},
            author_precision=True,
            author_arch=True,
        ),
        Protocol(
            "paper-as-run",
            "paper without augmentation, as the author's published code actually trained",
            {**AUTHOR_SPLIT, "augment": "none", "normalize": "imagenet"},
            author_precision=True,
            author_arch=True,
        ),
    )
}


def protocol_names() -> list[str]:
    """The protocol names, ``default`` first."""
    return list(PROTOCOLS)


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; an unknown name raises ``ConfigError`` listing the allowed ones."""

    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; allowed: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def protocol_fields(name: str, spec: ArchSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recipe fields and the arch fields (``"dropblock.law"`` style keys) that ``name`` sets for ``spec``."""
    p = get_protocol(name)
    recipe = dict(p.recipe)
    if p.author_precision:
        recipe.update(author_fields(spec.name)[0])
    arch: dict[str, Any] = {}
    if p.author_arch:
        arch["init"] = "paper"
        if spec.dropblock.type != "none":
            arch["dropblock.law"] = "paper"
    return recipe, arch


def apply_protocol(name: str, spec: ArchSpec, recipe_dict: Mapping[str, Any]) -> tuple[ArchSpec, dict[str, Any]]:
    """``spec`` and a copy of ``recipe_dict`` with protocol ``name``'s fields set (see the module docstring)."""
    recipe_fields, arch_fields = protocol_fields(name, spec)
    recipe = {**recipe_dict, **recipe_fields}
    if not arch_fields:
        return spec, recipe
    data = spec.to_dict()
    for dotted, value in arch_fields.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return type(spec).from_dict(data, f"protocol {name}"), recipe

