"""Seeded ablation studies: variants of a base network, one change at a time, trained through Ray Tune.

Public API
----------
``make_variants(base_spec, base_recipe, include=None, exclude=None, custom=None)``
    -> ``{name: (ArchSpec, Recipe)}`` (``base`` first); ``plan_variants`` also says which built-in
    variants were skipped and why, and what each variant changes. ``builtin_variants()`` lists the
    built-in names (from the registered fusion blocks and presets; also as ``BUILTIN_VARIANTS``).
``load_ablation(path=None, overrides=None)`` -> ``LoadedAblation`` (a validated ablation file;
    ConfigError naming the file and the field).
``run_ablation(loaded, resume=False, console=None, live=None, command=None)`` -> ``AblationResult``
    (writes OUT/ablation.csv, ablation.json, summary.csv, runs/<variant>/seed<k>, report.html).

Ray is imported only when an ablation runs.
"""

from nasattn.ablation import variants
from nasattn.ablation.run import AblationFailed, AblationResult, run_ablation
from nasattn.ablation.study import Ablation, LoadedAblation, load_ablation
from nasattn.ablation.variants import (
    VariantPlan,
    builtin_variants,
    fusion_strategies,
    make_variants,
    merge_override,
    plan_variants,
)


def __getattr__(name: str):  # BUILTIN_VARIANTS, FUSION_STRATEGIES: asked of the registries when used
    if name in ("BUILTIN_VARIANTS", "FUSION_STRATEGIES"):
        return getattr(variants, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Ablation", "AblationFailed", "AblationResult", "LoadedAblation", "VariantPlan", "builtin_variants",
    "fusion_strategies", "load_ablation", "make_variants", "merge_override", "plan_variants", "run_ablation",
]
