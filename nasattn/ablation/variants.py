"""Ablation variants: the base network and copies that change one component at a time.

Every built-in variant is derived from the base ArchSpec + Recipe by one named change:

==========================  ================================================================
``base``                    the base itself
``no_attention``            every stage's attention -> ``none``
``se_only``                 attention -> Squeeze-Excitation alone (the base's SE branch if it has one)
``coord_only``              attention -> Coordinate Attention alone (the base's coord branch if any)
``cbam``                    attention -> CBAM
``fusion_<strategy>``       the fusion strategy of every fusion block (branches kept); one per
                            strategy registered as a ``fusion`` block (the built-ins and a user's),
                            with the strategy's default parameters -- only when the base has fusion
``no_dropblock``            DropBlock schedule -> ``none``
``constant_dropblock``      DropBlock -> ``constant`` with p = mean(p_min, p_max) of the base's
                            progressive schedule (only when the base's schedule is progressive)
``no_class_weights``        recipe.class_weights -> ``none``
``alpha_no_decay``          recipe.no_weight_decay -> ``[fusion]``: the fusion weights without weight
                            decay (only when the base has a fusion block with parameters)
``paper_<preset>``          each preset of :mod:`nasattn.presets` (the paper's baseline, cbam,
                            balanced): its own architecture and its own recipe (only the top-level
                            ``epochs`` of an ablation file applies); the base's own preset is skipped
==========================  ================================================================

The attention variants change the stages that have attention in the base (all stages when none has).
A variant equal to the base, or one that does not apply to it, is skipped with a reason
(:func:`plan_variants` returns the reasons and each variant's differences from the base;
:func:`make_variants` only the variants). :func:`builtin_variants` lists the names for the blocks and
presets registered now.

Custom variants are override dicts deep-merged into the base's dicts::

    variants:
      wide_se: {arch: {stages: {"*": {attention: {type: se, reduction: 8}}}}, recipe: {lr: 0.0005}}

A mapping applied to a list merges into its items: the key ``"*"`` into every item, an integer key
(``0``, ``"-1"``) into that item; a list replaces the list. A mapping that changes a component's
``type`` (or a DropBlock ``schedule``) replaces that component rather than merging into it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

from nasattn.config import ConfigError, validate
from nasattn.spec import ArchSpec
from nasattn.presets import get_preset, list_presets
from nasattn.registry import block_names, create_block, get_block
from nasattn.recipe import Recipe

BASE = "base"
FUSION_KEYS = ("type", "strategy", "spatial", "channel")
ALPHA_NO_DECAY = "alpha_no_decay"
NO_DECAY_GROUP = "fusion"  # the recipe.no_weight_decay group of the fusion parameters

_FIXED_DESCRIPTIONS: dict[str, str] = {
    BASE: "the base network and recipe",
    "no_attention": "attention removed from every stage",
    "se_only": "Squeeze-Excitation alone instead of the base's attention",
    "coord_only": "Coordinate Attention alone instead of the base's attention",
    "cbam": "CBAM instead of the base's attention",
    "no_dropblock": "DropBlock off",
    "constant_dropblock": "DropBlock at a constant rate (mean of the progressive p_min, p_max)",
    "no_class_weights": "unweighted loss (recipe.class_weights: none)",
    ALPHA_NO_DECAY: "fusion weights excluded from weight decay (recipe.no_weight_decay: [fusion])",
}


def fusion_strategies() -> list[str]:
    """The registered fusion strategies (``fusion`` blocks of :mod:`nasattn.registry`)."""

    return block_names("fusion")


def paper_presets() -> list[str]:
    """The presets (:func:`nasattn.presets.list_presets`), each a ``paper_<name>`` variant."""

    return list_presets()


def builtin_variants() -> tuple[str, ...]:
    """The built-in variant names, in run order, for the fusion blocks and presets registered now."""
    return (
        BASE, "no_attention", "se_only", "coord_only", "cbam",
        *(f"fusion_{s}" for s in fusion_strategies()),
        "no_dropblock", "constant_dropblock", "no_class_weights", ALPHA_NO_DECAY,
        *(f"paper_{p}" for p in paper_presets()),
    )


def describe(name: str) -> str:
    """The one-line description of a built-in variant."""
    if name in _FIXED_DESCRIPTIONS:
        return _FIXED_DESCRIPTIONS[name]
    if name.startswith("fusion_"):
        s = name.removeprefix("fusion_")
        params = _fusion_params(s)
        return f"fusion strategy {s}" + (f" ({', '.join(f'{k} {v}' for k, v in params.items())})" if params else "")
    if name.startswith("paper_"):
        return f"the paper's {name.removeprefix('paper_')} preset (its own architecture and recipe)"
    return name


def __getattr__(name: str) -> Any:  # BUILTIN_VARIANTS, FUSION_STRATEGIES: computed from the registries
    if name == "BUILTIN_VARIANTS":
        return builtin_variants()
    if name == "FUSION_STRATEGIES":
        return tuple(fusion_strategies())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


Variant = tuple[ArchSpec, Any]  # (ArchSpec, nasattn.engine.Recipe)


class Skip(Exception):
    """A built-in variant that does not apply to the base; ``str()`` says why."""


@dataclass
class VariantPlan:
    """The variants to run (name -> (ArchSpec, Recipe), base first) and the skipped ones with reasons."""

    variants: dict[str, Variant] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    differences: dict[str, list[str]] = field(default_factory=dict)  # name -> "path: base -> variant"


# --------------------------------------------------------------------------------- merging
def merge_override(base: Any, override: Any, where: str = "") -> Any:
    """Deep-merge ``override`` into a copy of ``base``.

    dict into dict: key by key, except that a dict changing a component's ``type`` (or a DropBlock
    ``schedule``) replaces the old one (whose parameters belong to the old type); a dict into a list:
    ``"*"`` merges into every item, an integer key (negative counts from the end) into that item;
    anything else replaces the value.
    """
    if isinstance(override, dict) and isinstance(base, dict):
        for key in ("type", "schedule"):  # a new component type: its old parameters do not apply
            if key in override and key in base and override[key] != base[key]:
                return copy.deepcopy(override)
        out = dict(base)
        for key, value in override.items():
            path = f"{where}.{key}" if where else str(key)
            out[key] = merge_override(base.get(key), value, path) if key in base else copy.deepcopy(value)
        return out
    if isinstance(override, dict) and isinstance(base, list):
        out_list = [copy.deepcopy(x) for x in base]
        for key, value in override.items():
            if key == "*":
                out_list = [merge_override(item, value, f"{where}[*]") for item in out_list]
                continue
            try:
                i = int(key)
                out_list[i] = merge_override(out_list[i], value, f"{where}[{i}]")
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: {key!r} is not a list index; use an integer or '*' (every item)") from None
            except IndexError:
                raise ConfigError(f"{where}: index {key} is out of range (the list has {len(out_list)} items)") from None
        return out_list
    return copy.deepcopy(override)


# --------------------------------------------------------------------------------- attention
def _attentions(arch: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(s.get("attention") or {"type": "none"}) for s in arch["stages"]]


def _attended(arch: dict[str, Any]) -> list[int]:
    """Indices of the stages the attention variants change: those with attention (else every stage)."""
    idx = [i for i, a in enumerate(_attentions(arch)) if a.get("type", "none") != "none"]
    return idx or list(range(len(arch["stages"])))


def _branch(att: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """A ``kind`` (se/coord) attention inside ``att``: itself, or a fusion branch of that type."""
    if att.get("type") == kind:
        return dict(att)
    if att.get("type") == "fusion":
        for key in ("spatial", "channel"):
            b = att.get(key)
            if isinstance(b, dict) and b.get("type") == kind:
                return dict(b)
    return None


def _set_attention(arch: dict[str, Any], make: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(arch)
    for i in _attended(arch):
        out["stages"][i]["attention"] = make(dict(out["stages"][i].get("attention") or {"type": "none"}))
    return out


def _single(kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def make(att: dict[str, Any]) -> dict[str, Any]:
        return _branch(att, kind) or {"type": kind}

    return make


def _fusion_params(strategy: str) -> dict[str, Any]:
    """A strategy's parameters with their registered defaults (those without a default are left out)."""

    return {k: v for k, v in get_block("fusion", strategy).params.items() if v is not None}


def _fusion_strategy(arch: dict[str, Any], strategy: str) -> dict[str, Any]:
    if not any(a.get("type") == "fusion" for a in _attentions(arch)):
        raise Skip("the base has no fusion attention")
    out = copy.deepcopy(arch)
    for stage in out["stages"]:
        att = stage.get("attention") or {}
        if att.get("type") != "fusion":
            continue
        old = att.get("strategy", "learnable_alpha")
        if old == strategy:
            continue
        new = {k: att[k] for k in FUSION_KEYS if k in att}
        new["strategy"] = strategy
        new.update(_fusion_params(strategy))
        stage["attention"] = new
    return out


# --------------------------------------------------------------------------------- dropblock
def _no_dropblock(arch: dict[str, Any]) -> dict[str, Any]:
    db = arch.get("dropblock") or {}
    if db.get("schedule", "none") == "none":
        raise Skip("the base has no DropBlock")
    out = copy.deepcopy(arch)
    out["dropblock"] = {k: v for k, v in db.items() if k in ("block_size", "ramp_epochs")}
    out["dropblock"]["schedule"] = "none"
    return out


def _constant_dropblock(arch: dict[str, Any]) -> dict[str, Any]:
    db = arch.get("dropblock") or {}
    schedule = db.get("schedule", "none")
    if schedule != "progressive":
        raise Skip(f"the base's DropBlock schedule is {schedule!r}, not progressive")

    defaults = get_block("dropblock", "progressive").params
    p_min, p_max = db.get("p_min", defaults.get("p_min", 0.05)), db.get("p_max", defaults.get("p_max", 0.2))
    out = copy.deepcopy(arch)
    out["dropblock"] = {k: v for k, v in db.items() if k in ("block_size", "ramp_epochs")}
    out["dropblock"].update(schedule="constant", p=round((float(p_min) + float(p_max)) / 2, 10))
    return out


# --------------------------------------------------------------------------------- building
ArchChange = Callable[[dict[str, Any]], dict[str, Any]]
RecipeChange = Callable[[dict[str, Any]], dict[str, Any]]


def _arch_changes() -> dict[str, ArchChange]:
    changes: dict[str, ArchChange] = {
        "no_attention": lambda a: _set_attention(a, lambda _att: {"type": "none"}),
        "se_only": lambda a: _set_attention(a, _single("se")),
        "coord_only": lambda a: _set_attention(a, _single("coord")),
        "cbam": lambda a: _set_attention(a, lambda att: dict(att) if att.get("type") == "cbam" else {"type": "cbam"}),
        "no_dropblock": _no_dropblock,
        "constant_dropblock": _constant_dropblock,
    }
    for s in fusion_strategies():
        changes[f"fusion_{s}"] = lambda a, s=s: _fusion_strategy(a, s)
    return changes


def _no_class_weights(recipe: dict[str, Any]) -> dict[str, Any]:
    out = dict(recipe)
    out["class_weights"] = "none"
    return out


def _check_names(names: list[str] | None, allowed: list[str], field_name: str) -> None:
    for n in names or []:
        if n not in allowed:
            raise ConfigError(f"{field_name}: unknown variant {n!r}; allowed: {', '.join(allowed)}")


def _learnable_fusion(arch: dict[str, Any]) -> bool:
    """Whether some fusion block of ``arch`` has parameters (built from the registry with identity branches)."""
    import torch.nn as nn


    for att in _attentions(arch):
        if att.get("type") != "fusion":
            continue
        strategy = att.get("strategy", "learnable_alpha")
        params = {k: v for k, v in att.items() if k not in FUSION_KEYS}
        try:
            block = create_block("fusion", strategy, 8, nn.Identity(), nn.Identity(), **params)
        except Exception:  # noqa: BLE001 - a block that cannot be built here is not known to learn
            continue
        if any(True for _ in block.parameters()):
            return True
    return False


def no_decay_recipe(arch: dict[str, Any], recipe: dict[str, Any]) -> dict[str, Any]:
    """The ``alpha_no_decay`` recipe dict: ``no_weight_decay`` gains ``fusion``; Skip without a learnable fusion."""
    if not _learnable_fusion(arch):
        raise Skip("the base has no fusion block with learnable parameters")
    groups = list(recipe.get("no_weight_decay") or [])
    if NO_DECAY_GROUP in groups:
        raise Skip("the base already excludes the fusion weights from weight decay")
    out = dict(recipe)
    out["no_weight_decay"] = [*groups, NO_DECAY_GROUP]
    return out


def _alpha_no_decay(arch: dict[str, Any], recipe: dict[str, Any]) -> dict[str, Any]:
    out = no_decay_recipe(arch, recipe)
    if "no_weight_decay" not in Recipe.model_fields:
        raise Skip("this nasattn's recipe has no no_weight_decay field")
    return out


def diff_paths(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """``(path, a_value, b_value)`` where two JSON-like values differ (``stages[0].attention.strategy``): at
    the leaves, or at a component (a dict) whose ``type``/``schedule`` changed."""
    if isinstance(a, dict) and isinstance(b, dict):
        if path and any(k in a and k in b and a[k] != b[k] for k in ("type", "schedule")):  # another component
            return [(path, a, b)]
        out: list[tuple[str, Any, Any]] = []
        for k in sorted(set(a) | set(b), key=str):
            out += diff_paths(a.get(k, "<unset>"), b.get(k, "<unset>"), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff_paths(x, y, f"{path}[{i}]")]
    return [] if a == b else [(path, a, b)]


def differences(base: Variant, variant: Variant) -> list[str]:
    """What a variant changes: ``arch.<path>: base -> variant`` and ``recipe.<path>: ...`` lines."""
    import json

    def short(v: Any) -> str:
        text = json.dumps(v, default=str)
        return text if len(text) <= 60 else text[:57] + "..."

    import re

    out = []
    for part, x, y in (("arch", base[0].to_dict(), variant[0].to_dict()), ("recipe", base[1].to_dict(), variant[1].to_dict())):
        groups: dict[tuple[str, str, str], list[str]] = {}  # the same change in several stages: one line
        for p, u, w in diff_paths(x, y):
            m = re.match(r"stages\[(\d+)\](.*)", p)
            key = ("stages[{}]" + m.group(2) if m else p, short(u), short(w))
            groups.setdefault(key, []).append(m.group(1) if m else "")
        n_stages = len(x.get("stages", [])) if part == "arch" else 0
        for (p, u, w), idx in groups.items():
            where = "*" if len(idx) == n_stages and n_stages > 1 else ",".join(idx)
            out.append(f"{part}.{p.format(where)}: {u} -> {w}")
    return out


def plan_variants(
    base_spec: ArchSpec,
    base_recipe: Any,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    custom: dict[str, dict[str, Any]] | None = None,
    *,
    recipe_overrides: dict[str, Any] | None = None,
    base_preset: str | None = None,
) -> VariantPlan:
    """Build the variants (see the module docstring) with the reasons for the skipped ones and each
    variant's differences from the base.

    ``include``: only these built-in variants (``base`` is always kept); ``exclude``: not these
    (built-in or custom). ``custom``: ``{name: {"arch": {...}, "recipe": {...}}}`` overrides
    deep-merged into the base. ``recipe_overrides``: fields set in the paper presets' own recipes
    (an ablation file passes its top-level ``epochs`` only). ``base_preset``: the preset the base is
    (its ``paper_`` variant is skipped). Bad names or overrides raise ConfigError naming the field.
    """

    builtin = builtin_variants()
    custom = dict(custom or {})
    _check_variant_names(builtin, custom, include, exclude)

    base_arch = base_spec.to_dict()
    recipe_dict = base_recipe.to_dict() if hasattr(base_recipe, "to_dict") else dict(base_recipe or {})
    base_r = Recipe.model_validate(recipe_dict)
    wanted = [BASE] + [n for n in builtin if n != BASE and (include is None or n in include)]
    wanted = [n for n in wanted if not (exclude and n in exclude)]

    plan = VariantPlan()
    base_v = (ArchSpec.from_dict(base_arch, "base arch"), base_r)
    plan.variants[BASE] = base_v
    plan.descriptions[BASE] = describe(BASE)
    arch_changes = _arch_changes()
    base_key = (base_arch, base_r.to_dict())
    for name in wanted[1:]:
        try:
            if name in arch_changes:
                variant = (ArchSpec.from_dict(arch_changes[name](base_arch), f"variant {name}"), base_r)
            else:
                variant = _recipe_or_paper_variant(name, base_v, base_arch, recipe_dict, base_preset, recipe_overrides)
        except Skip as e:
            plan.skipped[name] = str(e)
            continue
        _add_variant(plan, name, base_v, base_key, variant, describe(name))
    for name, body in custom.items():
        if not (exclude and name in exclude):
            variant, description = _custom_variant(name, body, base_arch, recipe_dict)
            _add_variant(plan, name, base_v, base_key, variant, description)
    return plan


def _check_variant_names(builtin: dict[str, Any], custom: dict[str, Any], include: list[str] | None,
                         exclude: list[str] | None) -> None:
    """A ConfigError for a custom name that clashes or holds odd characters, an unknown include/exclude, an excluded base."""
    clash = [n for n in custom if n in builtin]
    if clash:
        raise ConfigError(f"variants.{clash[0]}: {clash[0]!r} is a built-in variant name; choose another name")
    for name in custom:
        if not name or not all(c.isalnum() or c in "_-." for c in name):
            raise ConfigError(f"variants.{name}: a variant name may hold letters, digits, '_', '-' and '.' only")
    _check_names(include, list(builtin), "include")
    _check_names(exclude, [*builtin, *custom], "exclude")
    if exclude and BASE in exclude:
        raise ConfigError("exclude: the base cannot be excluded (every variant is compared with it)")


def _recipe_or_paper_variant(name: str, base_v: tuple[ArchSpec, Any], base_arch: dict[str, Any], recipe_dict: dict[str, Any],
                             base_preset: str | None, recipe_overrides: dict[str, Any] | None) -> tuple[ArchSpec, Any]:
    """A built-in variant that changes the recipe (no_class_weights, alpha_no_decay) or is a paper preset; Skip if moot."""

    if name == "no_class_weights":
        if base_v[1].class_weights == "none":
            raise Skip("the base recipe has no class weights")
        return base_v[0], Recipe.model_validate(_no_class_weights(recipe_dict))
    if name == ALPHA_NO_DECAY:
        return base_v[0], Recipe.model_validate(_alpha_no_decay(base_arch, recipe_dict))
    preset_name = name.removeprefix("paper_")  # paper_<preset>: the preset's own architecture and recipe
    if preset_name == base_preset:
        raise Skip(f"the base is the {preset_name} preset (with the ablation file's recipe fields)")
    preset = get_preset(preset_name)
    return preset.arch, Recipe.model_validate(merge_override(preset.recipe_dict, recipe_overrides or {}))


def _custom_variant(name: str, body: Any, base_arch: dict[str, Any], recipe_dict: dict[str, Any]) -> tuple[tuple[ArchSpec, Any], str]:
    """``((spec, recipe), description)`` of a custom variant: its overrides deep-merged into the base."""

    body = dict(body or {})
    unknown = [k for k in body if k not in ("arch", "recipe", "description")]
    if unknown:
        raise ConfigError(f"variants.{name}.{unknown[0]}: unknown field; allowed: arch, recipe, description")
    arch_o, recipe_o = body.get("arch") or {}, body.get("recipe") or {}
    for key, val in (("arch", arch_o), ("recipe", recipe_o)):
        if not isinstance(val, dict):
            raise ConfigError(f"variants.{name}.{key}: expected a mapping of overrides, got {type(val).__name__}")
    spec = ArchSpec.from_dict(merge_override(base_arch, arch_o, f"variants.{name}.arch"), f"variants.{name}.arch")
    recipe = validate(Recipe, merge_override(recipe_dict, recipe_o, f"variants.{name}.recipe"), f"variants.{name}.recipe")
    return (spec, recipe), str(body.get("description") or _describe_override(arch_o, recipe_o))


def _add_variant(plan: VariantPlan, name: str, base_v: tuple[ArchSpec, Any], base_key: tuple[Any, Any],
                 variant: tuple[ArchSpec, Any], description: str) -> None:
    """Add ``variant`` to ``plan`` with its description and differences, or skip it as equal to the base."""
    spec, recipe = variant
    if (spec.to_dict(), recipe.to_dict()) == base_key:
        plan.skipped[name] = "equal to the base"
        return
    plan.variants[name] = (spec, recipe)
    plan.descriptions[name] = description
    plan.differences[name] = differences(base_v, (spec, recipe))


def _describe_override(arch: dict[str, Any], recipe: dict[str, Any]) -> str:
    import json

    parts = []
    if arch:
        parts.append("arch " + json.dumps(arch, default=str))
    if recipe:
        parts.append("recipe " + json.dumps(recipe, default=str))
    return "custom: " + ("; ".join(parts) or "no change")


def make_variants(
    base_spec: ArchSpec,
    base_recipe: Any,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    custom: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Variant]:
    """``{name: (ArchSpec, Recipe)}``: ``base`` first, then the applicable built-in variants, then ``custom``.

    See :func:`plan_variants` (which also says why variants were skipped).
    """
    return plan_variants(base_spec, base_recipe, include, exclude, custom).variants
