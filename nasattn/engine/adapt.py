"""Adapt an architecture and a recipe made for one dataset (a preset: EuroSAT) to another dataset's classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nasattn.config import ConfigError
from nasattn.recipe import Recipe

if TYPE_CHECKING:
    from nasattn.spec import ArchSpec


def adapt_to_dataset(
    spec: ArchSpec, recipe: Recipe, classes: Sequence[str], *, user_class_weights: bool = False
) -> tuple[ArchSpec, Recipe, list[str]]:
    """``(spec, recipe, notes)`` fitted to a dataset with ``classes``; each note is one line saying what changed.

    - The head gets one output per class (``spec.num_classes``).
    - Per-class ``class_weights`` of another length were written for another dataset: they are replaced by
      weights computed from the training labels (``balanced``). When the user gave them
      (``user_class_weights``, e.g. with ``--set``), a wrong length is an error instead.

    Raises ``ConfigError`` (naming the ``--set`` that fixes it) for what cannot adapt: user-given class
    weights of the wrong length.
    """
    k = len(classes)  # fewer than 2 classes is refused by the data layer's split (nasattn.data.split_dataset)
    notes: list[str] = []
    if spec.num_classes != k:
        notes.append(f"head: {spec.num_classes} -> {k} outputs (the dataset's classes)")
        spec = spec.model_copy(update={"num_classes": k})
    weights = recipe.class_weights
    if isinstance(weights, list) and len(weights) != k:
        if user_class_weights:
            check_class_weights(weights, classes)
        notes.append(
            f"class_weights: the recipe's {len(weights)} per-class weights are for another dataset; using "
            f"'balanced' weights computed from the training labels (--set class_weights=... to choose)"
        )
        recipe = recipe.model_copy(update={"class_weights": "balanced"})
    return spec, recipe, notes


def check_class_weights(weights: object, classes: Sequence[str], field: str = "recipe.class_weights",
                        fix: str = "--set class_weights=") -> None:
    """Raise ``ConfigError`` (naming ``field`` and how to fix it with ``fix``) when ``weights`` is a
    per-class list whose length is not the dataset's number of ``classes``."""
    k = len(classes)
    if isinstance(weights, list) and len(weights) != k:
        raise ConfigError(
            f"{field} has {len(weights)} entries but the dataset has {k} classes ({', '.join(classes)}); "
            f"give one weight per class in this order ({fix}[{', '.join(['1.0'] * k)}]) or computed ones "
            f"({fix}balanced)"
        )
