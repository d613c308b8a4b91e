"""The decisions of an ablation path: the space's top-level choices, each a named getter/setter on a point.

A point is ``(arch, recipe)``: an ArchSpec dict (``ArchSpec.to_dict()``) and a full recipe dict
(``Recipe.to_dict()``). :func:`decompose` splits a point into one value per decision of
:data:`DECISIONS`; :func:`compose` builds the point back from such values. Every field of a point
belongs to exactly one decision (the spec's ``name`` to none: it labels, it does not train), so
taking some decisions' values from TO and the rest from FROM gives a well-defined point, and taking
all of them from TO gives TO (up to its name).

Per-stage decisions (``block``, ``widths``, ``attention``) are lists with one value per stage; the
stage count belongs to ``layout``. When a per-stage list and the layout disagree in length, the list
is cut from the end or extended with its last value. So when FROM and TO differ in stage count, a
per-stage decision can stop mattering once ``layout`` is flipped (FROM's list cut to TO's count may
equal TO's); the path still flips it as a step (a re-training of the same network).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

Point = tuple[dict[str, Any], dict[str, Any]]  # (ArchSpec dict, Recipe dict)
STAGE_OWNED = {"block": ("block", "block_params"), "widths": ("width",), "attention": ("attention",)}
ARCH_OWNED = ("name", "stages", "stem", "head", "dropblock")


@dataclass(frozen=True)
class Decision:
    """A named top-level choice: ``get(point)`` its value; the setter is :func:`compose` over all values."""

    name: str
    description: str
    get: Callable[[Point], Any]


def _stage_part(keys: tuple[str, ...]) -> Callable[[Point], list[dict[str, Any]]]:
    def get(point: Point) -> list[dict[str, Any]]:
        return [{k: copy.deepcopy(s[k]) for k in keys if k in s} for s in point[0]["stages"]]

    return get


def _layout(point: Point) -> list[dict[str, Any]]:
    owned = {k for keys in STAGE_OWNED.values() for k in keys}
    return [{k: copy.deepcopy(v) for k, v in s.items() if k not in owned} for s in point[0]["stages"]]


def _arch_key(key: str) -> Callable[[Point], Any]:
    return lambda point: copy.deepcopy(point[0].get(key))


def _arch_rest(point: Point) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in point[0].items() if k not in ARCH_OWNED}


def _recipe_rest(point: Point) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in point[1].items() if k != "class_weights"}


DECISIONS: tuple[Decision, ...] = (
    Decision("block", "block type and its parameters, per stage", _stage_part(STAGE_OWNED["block"])),
    Decision("layout", "stage count, depth and downsampling per stage", _layout),
    Decision("widths", "channel width per stage", _stage_part(STAGE_OWNED["widths"])),
    Decision("stem", "the stem (or none)", _arch_key("stem")),
    Decision("attention", "attention block, per stage", _stage_part(STAGE_OWNED["attention"])),
    Decision("dropblock", "the DropBlock schedule", _arch_key("dropblock")),
    Decision("head", "the classifier head", _arch_key("head")),
    Decision("arch_other", "the other architecture fields (init, input size, classes, ...)", _arch_rest),
    Decision("class_weights", "recipe.class_weights", lambda p: copy.deepcopy(p[1].get("class_weights"))),
    Decision("recipe", "the other recipe fields (optimizer, schedule, augmentation, ...)", _recipe_rest),
)
"""The registry: every decision a path may flip, in the order they are listed and tried."""

DECISION_NAMES: tuple[str, ...] = tuple(d.name for d in DECISIONS)


def decompose(point: Point) -> dict[str, Any]:
    """One value per decision of :data:`DECISIONS`."""
    return {d.name: d.get(point) for d in DECISIONS}


def _fit(values: list[Any], n: int) -> list[Any]:
    """``values`` cut or extended with its last item to length ``n``."""
    return [copy.deepcopy(values[min(i, len(values) - 1)]) for i in range(n)] if values else [{} for _ in range(n)]


def compose(values: dict[str, Any], name: str | None = None) -> Point:
    """The point with these decision values (the inverse of :func:`decompose`, up to the spec's name)."""
    layout = values["layout"]
    parts = [_fit(values[k], len(layout)) for k in STAGE_OWNED]
    stages = [{**copy.deepcopy(base), **{k: v for part in parts for k, v in part[i].items()}}
              for i, base in enumerate(layout)]
    arch = {**copy.deepcopy(values["arch_other"]), "name": name, "stem": copy.deepcopy(values["stem"]),
            "stages": stages, "head": copy.deepcopy(values["head"]), "dropblock": copy.deepcopy(values["dropblock"])}
    recipe = {**copy.deepcopy(values["recipe"]), "class_weights": copy.deepcopy(values["class_weights"])}
    return arch, recipe


def differing(a: Point, b: Point) -> list[str]:
    """The decisions in which two points differ, in registry order."""
    va, vb = decompose(a), decompose(b)
    return [n for n in DECISION_NAMES if va[n] != vb[n]]


def flip(start: Point, target: Point, flipped: frozenset[str] | set[str] | tuple[str, ...]) -> Point:
    """``start`` with the decisions in ``flipped`` taken from ``target``."""
    vs, vt = decompose(start), decompose(target)
    unknown = set(flipped) - set(DECISION_NAMES)
    if unknown:
        raise KeyError(f"unknown decisions {sorted(unknown)}; known: {', '.join(DECISION_NAMES)}")
    return compose({n: vt[n] if n in flipped else vs[n] for n in DECISION_NAMES})


def point_key(flipped: frozenset[str] | set[str] | tuple[str, ...]) -> str:
    """A point's folder name: ``from``, or ``from+<decision>+...`` in registry order."""
    return "+".join(["from", *(n for n in DECISION_NAMES if n in flipped)])
