"""Data a run of many trials needs before its first trial: decoded once, split-checked, described."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from nasattn.data.sources import load_dataset
from nasattn.data.split import split_dataset
from nasattn.engine.adapt import check_class_weights
from nasattn.recipe import Recipe


def split_fields(recipe: Mapping[str, Any]) -> tuple[tuple[float, ...], int, bool]:
    """``(split_ratios, split_seed, stratify)`` of a (partial) recipe dict, the Recipe's defaults filling gaps."""
    fields = Recipe.model_fields

    def get(name: str) -> Any:
        return recipe.get(name, fields[name].default)

    return tuple(float(r) for r in get("split_ratios")), int(get("split_seed")), bool(get("stratify"))


def prepare_data(
    source: str | os.PathLike | None,
    *,
    download: bool = False,
    image_size: int | None = None,
    recipe: Mapping[str, Any] | None = None,
    recipe_field: str | None = None,
    progress: bool = False,
) -> tuple[str | os.PathLike | None, str]:
    """Fill the decoded cache for ``source`` at ``image_size`` (the key the trials read), check that the
    dataset can be split as ``recipe`` says (a ``DataError`` naming the minimum before any trial starts),
    that per-class ``class_weights`` the user wrote (at ``recipe_field`` of their file) fit its classes,
    and return ``(source, a line describing the data and one per note of what loading changed)``."""
    dataset = load_dataset(source, download=download, image_size=image_size, progress=progress)
    ratios, seed, stratify = split_fields(recipe or {})
    split_dataset(dataset.labels, ratios, seed, stratify, classes=dataset.classes)
    if recipe_field is not None:  # the user's per-class weights must fit this dataset, before any trial
        check_class_weights((recipe or {}).get("class_weights"), dataset.classes, recipe_field, f"--set {recipe_field}=")
    line = f"data: {getattr(dataset, 'source', source)} ({len(dataset)} images, {len(dataset.classes)} classes)"
    return source, "\n".join([line, *(f"note: {n}" for n in dataset.notes)])
