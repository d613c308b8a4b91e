"""Points of a space: an architecture (a preset) inverted into Optuna parameters."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from nasattn.config import ConfigError
from nasattn.presets import get_preset
from nasattn.registry import get_block
from nasattn.search.space.dims import (
    Choice,
    Dim,
    Fixed,
    FloatRange,
    IntRange,
    NotInSpace,
    Options,
    Progression,
    Rejected,
    _allowed_params,
)
from nasattn.search.space.model import PAPER_CLASS_WEIGHTS, SearchSpace, _dim_values, paper_class_weights
from nasattn.search.space.sample import build_arch_dict, check_constraints
from nasattn.search.space.walk import _is_variable, describe_dim
from nasattn.spec import ArchSpec


def canonical_arch(arch: Any) -> dict[str, Any]:
    """An ArchSpec as a dict with every block parameter filled with its default (for comparisons)."""
    spec = arch if isinstance(arch, ArchSpec) else ArchSpec.from_dict(arch)
    d = spec.to_dict()
    d.pop("name", None)

    def fill(kind: str, comp: dict[str, Any] | None, key: str = "type") -> dict[str, Any] | None:
        if comp is None:
            return None
        name = comp.get(key)
        if kind == "stem" and name == "none":
            return None
        out = dict(comp)
        if kind == "attention" and name == "fusion":
            strategy = out.setdefault("strategy", "learnable_alpha")
            for k, v in get_block("fusion", strategy).params.items():
                out.setdefault(k, v)
            out["spatial"] = fill("attention", out.get("spatial") or {"type": "coord", "reduction": 8})
            out["channel"] = fill("attention", out.get("channel") or {"type": "se", "reduction": 16})
            return out
        for k, v in get_block(kind, name).params.items():
            out.setdefault(k, v)
        return out

    d["stem"] = fill("stem", d.get("stem"))
    d["head"] = fill("head", d["head"])
    d["dropblock"] = fill("dropblock", d["dropblock"], "schedule")
    for stage in d["stages"]:
        stage["attention"] = fill("attention", stage["attention"])
        params = dict(get_block("conv", stage["block"]).params)
        params.update(stage.get("block_params") or {})
        stage["block_params"] = params
    return d


class _Recorder:
    """A trial that records every suggest call and answers from ``params`` (None if missing)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.asked: dict[str, Any] = {}

    def _get(self, name: str, default: Any) -> Any:
        value = self.params.get(name, default)
        self.asked[name] = value
        return value

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self._get(name, choices[0])

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self._get(name, low)

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None, log: bool = False) -> float:
        return self._get(name, low)


def _fits(dim: Dim, value: Any, name: str) -> None:
    """Raise NotInSpace unless ``value`` is a value of the scalar dim ``dim``."""
    if isinstance(dim, Fixed):
        if dim.value != value:
            raise NotInSpace(f"{name} = {value!r}, but the space fixes it at {dim.value!r}")
    elif isinstance(dim, Choice):
        if value not in dim.values:
            raise NotInSpace(f"{name} = {value!r} is not among {list(dim.values)}")
    elif isinstance(dim, IntRange):
        if not (isinstance(value, (int, float)) and float(value).is_integer() and dim.lo <= value <= dim.hi
                and (value - dim.lo) % dim.step == 0):
            raise NotInSpace(f"{name} = {value!r} is outside {describe_dim(dim)}")
    elif isinstance(dim, FloatRange):
        ok = isinstance(value, (int, float)) and dim.lo - 1e-12 <= value <= dim.hi + 1e-12
        if ok and dim.step is not None:
            k = (value - dim.lo) / dim.step
            ok = math.isclose(k, round(k), abs_tol=1e-6)
        if not ok:
            raise NotInSpace(f"{name} = {value!r} is outside {describe_dim(dim)}")


def _invert_component(dim: Options, comp: dict[str, Any], name: str, kind: str, out: dict[str, Any]) -> None:
    """Find parameters for which the block choice ``dim`` yields ``comp`` ({type: ..., **params})."""
    chosen = comp["type"]
    if chosen not in dim.options:
        raise NotInSpace(f"{name}: {kind} {chosen!r} is not among {list(dim.options)}")
    if len(dim.options) > 1:
        out[name] = chosen
    tree = dim.options[chosen]
    defaults = _allowed_params(kind, chosen)
    params = {k: v for k, v in comp.items() if k != "type"}
    # Parameters the space leaves unset take their defaults; the round trip in arch_point checks them.
    for key, sub in tree.items():
        value = params.get(key, defaults.get(key))
        pname = f"{name}.{chosen}.{key}"
        if isinstance(sub, Options):
            if not isinstance(value, dict):
                raise NotInSpace(f"{pname}: expected a block, got {value!r}")
            _invert_component(sub, value, pname, sub.kind, out)
        else:
            _fits(sub, value, pname)
            if _is_variable(sub):
                out[pname] = value


def _attention_component(att: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`_attention_dict`: fusion strategy params folded into ``strategy``."""
    if att["type"] != "fusion":
        return att
    strategy = att.get("strategy", "learnable_alpha")
    sparams = {k: v for k, v in att.items() if k not in ("type", "strategy", "spatial", "channel")}
    comp: dict[str, Any] = {"type": "fusion", "strategy": {"type": strategy, **sparams}}
    comp["spatial"] = att.get("spatial") or {"type": "coord", "reduction": 8}
    comp["channel"] = att.get("channel") or {"type": "se", "reduction": 16}
    return comp


def arch_point(space: SearchSpace, arch: Any, recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Optuna parameters for which the space yields ``arch`` (raises :class:`NotInSpace` if none).

    ``recipe`` values that are points of the space's recipe dims are added; others are left to the
    sampler. The result is verified by sampling it back and comparing canonical architectures.
    """
    spec = arch if isinstance(arch, ArchSpec) else ArchSpec.from_dict(arch)
    canon = canonical_arch(spec)
    out: dict[str, Any] = {}
    for key in ("in_channels", "num_classes", "input_size", "init"):
        if getattr(spec, key) != getattr(space, key):
            raise NotInSpace(f"{key} = {getattr(spec, key)!r}, but the space has {getattr(space, key)!r}")
    stem = {"type": "none"} if canon["stem"] is None else dict(canon["stem"])
    _invert_component(space.stem, stem, "stem", "stem", out)
    _invert_stages(space.stages, spec, canon, out)
    out = _invert_attention(space, canon, len(spec.stages), out)
    _invert_component(space.head, dict(canon["head"]), "head", "head", out)
    db = dict(canon["dropblock"])
    db["type"] = db.pop("schedule")
    _invert_component(space.dropblock, db, "dropblock", "dropblock", out)
    if recipe:
        out.update(recipe_point(space, recipe))

    # Verify: sampling the point back must give the same network.
    rec = _Recorder(out)
    back = canonical_arch(build_arch_dict(space, rec))
    if back != canon:
        raise NotInSpace(_first_difference(canon, back))
    return {k: v for k, v in out.items() if k in rec.asked or k.startswith("recipe.")}


def _per_or_shared(per: set[str], key: str, values: list[Any], check: Callable[[Any, str], None]) -> None:
    """Check each stage's value (``key`` drawn per stage) or the one value all stages share."""
    if key in per:
        for i, v in enumerate(values):
            check(v, f"stage{i + 1}.{key}")
    else:
        if len({repr(v) for v in values}) > 1:
            raise NotInSpace(f"stages differ in {key} ({values}), but {key} is not drawn per stage")
        check(values[0], f"stages.{key}")


def _scalar_check(dim: Dim, out: dict[str, Any]) -> Callable[[Any, str], None]:
    """A check that ``v`` is a value of ``dim``, recording it in ``out`` when the dim is drawn."""
    def check(v: Any, name: str) -> None:
        _fits(dim, v, name)
        if _is_variable(dim):
            out[name] = v
    return check


def _invert_stages(st: Any, spec: ArchSpec, canon: dict[str, Any], out: dict[str, Any]) -> None:
    """The stage parameters (count, block, depth, width, downsample) of ``spec``, into ``out``."""
    per, n = set(st.per_stage), len(spec.stages)
    _fits(st.count, n, "stages.count")
    if _is_variable(st.count):
        out["stages.count"] = n
    blocks = [{"type": s["block"], **{k: v for k, v in s["block_params"].items()}} for s in canon["stages"]]
    _per_or_shared(per, "block", blocks, lambda v, name: _invert_component(st.block, v, name, "conv", out))
    _per_or_shared(per, "depth", [s.depth for s in spec.stages], _scalar_check(st.depth, out))
    widths = [s.width for s in spec.stages]
    if isinstance(st.width, Progression):
        _invert_progression(st.width, widths, out)
    else:
        _per_or_shared(per, "width", widths, _scalar_check(st.width, out))
    _invert_downsample(st, per, [s.downsample for s in spec.stages], out)


def _invert_downsample(st: Any, per: set[str], ds: list[Any], out: dict[str, Any]) -> None:
    """The downsample parameters: per stage, or shared by stages 2.. with ``downsample_first`` for stage 1."""
    if "downsample" in per:
        _per_or_shared(per, "downsample", ds, _scalar_check(st.downsample, out))
        return
    rest = ds[1:] or [ds[0] if ds[0] != "none" else next(iter(_dim_values(st.downsample)))]
    _per_or_shared(per, "downsample", rest, _scalar_check(st.downsample, out))
    first = ds[0] == rest[0]
    if not first and ds[0] != "none":
        raise NotInSpace(f"the first stage downsamples by {ds[0]!r} and the others by {rest[0]!r}")
    _fits(st.downsample_first, first, "stages.downsample_first")
    if _is_variable(st.downsample_first):
        out["stages.downsample_first"] = first


def _invert_attention(space: SearchSpace, canon: dict[str, Any], n: int, out: dict[str, Any]) -> dict[str, Any]:
    """``out`` with the attention parameters of the first attention mode of the space that yields the stages'."""
    atts = [_attention_component(s["attention"]) for s in canon["stages"]]
    modes = _dim_values(space.attention.mode)
    reasons = []
    for mode in ("same", "skip_first", "per_stage"):
        if mode not in modes:
            continue
        trial_out = dict(out)
        try:
            _invert_attention_mode(space, mode, atts, n, trial_out)
        except NotInSpace as e:
            reasons.append(f"attention.mode {mode}: {e}")
            continue
        if len(modes) > 1:
            trial_out["attention.mode"] = mode
        return trial_out
    raise NotInSpace("; ".join(reasons) or "no attention mode allowed")


def _invert_attention_mode(space: SearchSpace, mode: str, atts: list[dict[str, Any]], n: int, out: dict[str, Any]) -> None:
    """The attention parameters of the stages ``atts`` under one attention ``mode``, into ``out``."""
    if mode == "same":
        if len({repr(a) for a in atts}) > 1:
            raise NotInSpace("stages differ in attention")
        _invert_component(space.attention.type, atts[0], "attention", "attention", out)
    elif mode == "skip_first":
        if atts[0]["type"] != "none" or len({repr(a) for a in atts[1:]}) > 1 or n < 2:
            raise NotInSpace("not: no attention in stage 1 and one attention in the others")
        _invert_component(space.attention.type, atts[1], "attention", "attention", out)
    else:
        for i, a in enumerate(atts):
            _invert_component(space.attention.type, a, f"stage{i + 1}.attention", "attention", out)


def recipe_point(space: SearchSpace, recipe: dict[str, Any]) -> dict[str, Any]:
    """Parameters for the recipe values that are points of the space (others are skipped)."""
    out: dict[str, Any] = {}
    for key, dim in space.recipe.items.items():
        if key not in recipe:
            continue
        value = recipe[key]
        if key == "class_weights" and isinstance(value, list) and value == paper_class_weights():
            value = PAPER_CLASS_WEIGHTS  # the named choice that samples back to this list
        try:
            if isinstance(dim, Options):
                if value not in dim.options:
                    continue
                sub: dict[str, Any] = {}
                for pk, pd in dim.options[value].items():
                    if pk in recipe:
                        _fits(pd, recipe[pk], f"recipe.{key}.{value}.{pk}")
                        if _is_variable(pd):
                            sub[f"recipe.{key}.{value}.{pk}"] = recipe[pk]
                if len(dim.options) > 1:
                    out[f"recipe.{key}"] = value
                out.update(sub)
            else:
                _fits(dim, value, f"recipe.{key}")
                if _is_variable(dim):
                    out[f"recipe.{key}"] = value
        except NotInSpace:
            continue
    return out


def _first_difference(a: Any, b: Any, path: str = "arch") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path} = {a!r} cannot be reached (the space gives {b!r})"


def _invert_progression(prog: Progression, widths: list[int], out: dict[str, Any]) -> None:
    base_vals = [widths[0]]
    growth_vals = _dim_values(prog.growth) or []
    if isinstance(prog.growth, FloatRange) and prog.growth.step is None:
        growth_vals = [widths[1] / widths[0]] if len(widths) > 1 else [prog.growth.lo]
    max_vals = list(_dim_values(prog.max) or [])
    if isinstance(prog.max, IntRange) and len(max_vals) == 2 and prog.max.hi - prog.max.lo > 100_000:
        max_vals = []
    max_vals += [w for w in widths if w not in max_vals]
    for b in base_vals:
        for g in growth_vals:
            for m in max_vals:
                if [int(min(round(b * g**i), m)) for i in range(len(widths))] != widths:
                    continue
                try:
                    _fits(prog.base, b, "stages.width.base")
                    _fits(prog.growth, g, "stages.width.growth")
                    _fits(prog.max, m, "stages.width.max")
                except NotInSpace:
                    continue
                for name, dim, v in (("base", prog.base, b), ("growth", prog.growth, g), ("max", prog.max, m)):
                    if _is_variable(dim):
                        out[f"stages.width.{name}"] = v
                return
    raise NotInSpace(f"stage widths {widths} are not min(base * growth**i, max) for any base/growth/max of the space")


def space_contains(space: SearchSpace, arch: Any) -> bool:
    """Whether ``arch`` (an ArchSpec or dict) is a point of ``space`` (constraints included)."""
    try:
        arch_point(space, arch)
        check_constraints(space, arch if isinstance(arch, ArchSpec) else ArchSpec.from_dict(arch))
    except (NotInSpace, Rejected):
        return False
    return True


def preset_points(space: SearchSpace, names: list[str]) -> dict[str, dict[str, Any]]:
    """Optuna parameters of each named preset (architecture, plus recipe values inside the space)."""
    points: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in space.points:
            points[name] = dict(space.points[name])
            continue
        preset = get_preset(name)
        try:
            points[name] = arch_point(space, preset.arch, preset.recipe.to_dict())  # every recipe field, defaults too
            check_constraints(space, preset.arch)
        except (NotInSpace, Rejected) as e:
            raise ConfigError(f"seeds: preset {name!r} is not a point of the search space: {e}") from None
    return points
