"""Search spaces: a declarative YAML language over the block registry, sampled define-by-run with Optuna.

A *dimension* (dim) is written as one of::

    16                                  # a fixed value (any scalar, list or mapping)
    {choice: [8, 16, 32]}               # categorical (scalars only)
    {int: [1, 4]}                       # integer range, inclusive; optional step: 2, log: true
    {float: [1.0e-4, 1.0e-2], log: true}  # float range; optional step: 0.05 (not with log)
    {options: {se: {reduction: {choice: [8, 16]}}, cbam: {}, none: null}}
                                        # a registered block chosen by name; its parameters (dims
                                        # themselves) exist only when that block is chosen: conditional
    {options: [none, se, cbam]}         # the same with every parameter at its default
    {type: se, reduction: {choice: [8, 16]}}   # one block, with dims as parameters

Where a block is expected (``stem``, ``stages.block``, ``attention.type``, ``head``, ``dropblock``
and, inside a fusion attention, ``strategy``, ``spatial`` and ``channel``) a plain name is a fixed
block and ``{choice: [...]}`` of names means ``options`` with default parameters.

Structure (every key optional; defaults in brackets)::

    name: eurosat
    input_size: 64                # [64] num_classes [10], in_channels [3], init [paper]
    stem: {options: {none: null, conv: {width: {choice: [32, 64]}}}}           # [none]
    stages:
      count: {int: [3, 6]}        # number of stages [3]
      block: {options: {plain: {conv_bias: {choice: [true, false]}}, double: ..., residual: ...}}
      depth: {int: [1, 3]}        # blocks per stage [1]
      width: {base: {choice: [16, 32, 64]}, growth: 2, max: {choice: [256, 512]}}
                                  # stage i (0-based) has min(base * growth**i, max) channels;
                                  # or a plain dim (one width for all, or per stage)
      downsample: {choice: [maxpool, stride]}   # how stages halve the resolution [maxpool]
      downsample_first: {choice: [true, false]} # does the first stage downsample too [true]
      per_stage: [depth]          # which of block, depth, width, downsample are drawn per stage
    attention:
      mode: {choice: [same, skip_first, per_stage]}
                                  # same: one attention in every stage; skip_first: none in the
                                  # first stage, one attention in the others; per_stage: one each
      type: {options: {none: null, se: ..., cbam: ..., coord: ..., fusion: {strategy: ..., spatial: ..., channel: ...}}}
    head: {options: {gap_linear: {dropout: {float: [0.0, 0.5], step: 0.1}}, gap_mlp: ..., flatten_mlp: ...}}
    dropblock: {options: {none: null, progressive: {p_min: 0.05, p_max: {float: [0.1, 0.3]}, block_size: {choice: [3, 5, 7]}}}}
    recipe:                        # Recipe fields: dims, or options whose parameters are Recipe fields
      lr: {float: [1.0e-4, 3.0e-3], log: true}
      optimizer: {options: {adamw: null, sgd: {momentum: {float: [0.8, 0.95]}}}}
    constraints:                   # sampled architectures outside these are rejected (resampled)
      conv_layers: [3, 30]         # [min, max]; null for no bound. Also layers, params, flops, stages
    points: {name: {param: value}} # optional named points (Optuna parameter dicts) to enqueue

Optuna parameter names are dotted paths: ``stages.count``, ``stage2.depth`` (1-based, per stage),
``attention`` (the chosen block), ``attention.se.reduction`` (its parameter), ``stage3.attention``
(per-stage mode), ``head.gap_linear.dropout``, ``dropblock.progressive.p_max``, ``recipe.lr``.

Constraints: ``sample_spec`` raises :class:`Rejected` for an architecture that violates one (or that
ArchSpec itself rejects, such as too many downsampling stages for the input); the search records
the sample as a pruned Optuna trial with the reason and draws again (see ``nasattn.search.searcher``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nasattn.config import ConfigError, read_yaml
from nasattn.registry import UnknownBlockError, get_block

DIM_KEYS = ("choice", "int", "float", "options")
ATTENTION_MODES = ("same", "skip_first", "per_stage")
PER_STAGE_KEYS = ("block", "depth", "width", "downsample")
DOWNSAMPLE = ("none", "maxpool", "stride")
# Parameters a kind accepts besides its registered block's constructor parameters.
_EXTRA_PARAMS: dict[str, dict[str, Any]] = {
    "stem": {"width": 64},
    "dropblock": {"block_size": 7, "ramp_epochs": 0},
}
_FUSION_KEYS = ("strategy", "spatial", "channel")


class Rejected(Exception):
    """A sampled point violates a constraint (or is not a valid ArchSpec); ``str()`` says why."""


class NotInSpace(Exception):
    """An architecture is not a point of the space; ``str()`` says which choice is missing."""


# --------------------------------------------------------------------------------------------- dims
@dataclass(frozen=True)
class Fixed:
    value: Any


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]


@dataclass(frozen=True)
class IntRange:
    lo: int
    hi: int
    step: int = 1
    log: bool = False

    def values(self) -> list[int]:
        return list(range(self.lo, self.hi + 1, self.step))


@dataclass(frozen=True)
class FloatRange:
    lo: float
    hi: float
    step: float | None = None
    log: bool = False

    def values(self) -> list[float] | None:
        if self.step is None:
            return None
        n = int(math.floor((self.hi - self.lo) / self.step + 1e-9))
        return [round(self.lo + i * self.step, 12) for i in range(n + 1)]


@dataclass(frozen=True)
class Options:
    kind: str
    options: dict[str, dict[str, Any]]  # name -> {param: dim}


@dataclass(frozen=True)
class Tree:
    items: dict[str, Any]  # key -> dim


Dim = Any  # Fixed | Choice | IntRange | FloatRange | Options | Tree


@dataclass(frozen=True)
class Progression:
    """Stage widths ``min(base * growth**i, max)``, rounded to an integer."""

    base: Dim
    growth: Dim
    max: Dim


def _is_dim_mapping(raw: Any) -> bool:
    return isinstance(raw, dict) and any(k in raw for k in DIM_KEYS)


def _fmt(values: Any) -> str:
    return ", ".join(str(v) for v in values)


def parse_dim(raw: Any, path: str, kind: str | None = None, param_type: Any = None) -> Dim:
    """Parse one dim; ``kind`` (a registry kind) makes it a block choice. Errors name ``path``."""
    if kind is not None:
        return _parse_options(raw, path, kind)
    if _is_dim_mapping(raw):
        keys = [k for k in DIM_KEYS if k in raw]
        if len(keys) > 1:
            raise ValueError(f"{path}: give one of {', '.join(DIM_KEYS)}, not {' and '.join(keys)}")
        key = keys[0]
        extra = set(raw) - {key, "step", "log"}
        if extra or (key in ("choice", "options") and set(raw) - {key}):
            bad = sorted(set(raw) - {key}) if key in ("choice", "options") else sorted(extra)
            allowed = "(nothing else)" if key in ("choice", "options") else "step, log"
            raise ValueError(f"{path}: unknown key(s) {', '.join(map(str, bad))} beside {key!r}; allowed: {allowed}")
        if key == "choice":
            values = raw["choice"]
            if not isinstance(values, list) or not values:
                raise ValueError(f"{path}.choice: an empty choice; give a non-empty list of values")
            for v in values:
                if not (v is None or isinstance(v, (bool, int, float, str))):
                    raise ValueError(
                        f"{path}.choice: {v!r} is not a scalar; choices are numbers, strings, booleans or null "
                        "(use options: for blocks with parameters)"
                    )
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"{path}.choice: duplicate values in {values}")
            for v in values:
                _check_type(v, param_type, f"{path}.choice")
            return Choice(tuple(values))
        if key == "options":
            raise ValueError(f"{path}: options: is only allowed where a block is chosen (stem, block, attention, head, dropblock) or for a recipe field")
        bounds = raw[key]
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
            raise ValueError(f"{path}.{key}: give [low, high], two numbers; got {bounds!r}")
        lo, hi = bounds
        log = raw.get("log", False)
        step = raw.get("step")
        if not isinstance(log, bool):
            raise ValueError(f"{path}.log: must be true or false, got {log!r}")
        if lo > hi:
            raise ValueError(f"{path}.{key}: impossible range [{lo}, {hi}]: low is above high")
        if log and lo <= 0:
            raise ValueError(f"{path}.{key}: a log range needs low > 0, got [{lo}, {hi}]")
        if log and step not in (None, 1) and key == "float":
            raise ValueError(f"{path}: step and log cannot be combined for a float range")
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
            raise ValueError(f"{path}.step: must be a positive number, got {step!r}")
        if key == "int":
            if not all(float(b).is_integer() for b in bounds) or (step is not None and not float(step).is_integer()):
                raise ValueError(f"{path}.int: bounds and step must be integers, got {bounds} step {step}")
            if log and step not in (None, 1):
                raise ValueError(f"{path}: an int log range must have step 1")
            dim: Dim = IntRange(int(lo), int(hi), int(step or 1), log)
            if (dim.hi - dim.lo) % dim.step:
                raise ValueError(f"{path}.int: range [{lo}, {hi}] is not a whole number of steps of {step}")
            _check_type(int(lo), param_type, f"{path}.int")
            return dim
        if step is not None and not math.isclose(((hi - lo) / step) - round((hi - lo) / step), 0, abs_tol=1e-9):
            raise ValueError(f"{path}.float: range [{lo}, {hi}] is not a whole number of steps of {step}")
        if param_type is int:
            raise ValueError(f"{path}: this parameter is an integer; use int: instead of float:")
        _check_type(float(lo), param_type, f"{path}.float")
        return FloatRange(float(lo), float(hi), None if step is None else float(step), log)
    if isinstance(raw, dict):
        return Tree({str(k): parse_dim(v, f"{path}.{k}") for k, v in raw.items()})
    _check_type(raw, param_type, path)
    return Fixed(raw)


def _check_type(value: Any, param_type: Any, path: str) -> None:
    if param_type is None or value is None:
        return
    if param_type is bool and not isinstance(value, bool):
        raise ValueError(f"{path}: {value!r} must be true or false")
    if param_type in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{path}: {value!r} must be a number")
    if param_type is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{path}: {value!r} must be an integer")
    if param_type is str and not isinstance(value, str):
        raise ValueError(f"{path}: {value!r} must be a string")


def _allowed_params(kind: str, name: str) -> dict[str, Any]:
    params = dict(get_block(kind, name).params)
    params.update(_EXTRA_PARAMS.get(kind, {}))
    if kind == "attention" and name == "fusion":
        params = {k: None for k in _FUSION_KEYS}
    return params


def _param_type(default: Any) -> Any:
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, str):
        return str
    return None


def _parse_options(raw: Any, path: str, kind: str, exclude: tuple[str, ...] = ()) -> Options:
    """A block choice of ``kind``: a name, {type: name, ...}, {choice: [names]} or {options: ...}."""
    from nasattn.registry import block_names

    if isinstance(raw, str):
        entries: dict[str, Any] = {raw: None}
    elif isinstance(raw, dict) and "type" in raw and not _is_dim_mapping(raw):
        entries = {raw["type"]: {k: v for k, v in raw.items() if k != "type"}}
    elif isinstance(raw, dict) and set(raw) == {"choice"}:
        if not isinstance(raw["choice"], list) or not raw["choice"]:
            raise ValueError(f"{path}.choice: an empty choice; allowed {kind} blocks: {_fmt(block_names(kind))}")
        entries = {str(n): None for n in raw["choice"]}
        path = f"{path}.choice"
    elif isinstance(raw, dict) and set(raw) == {"options"}:
        opts = raw["options"]
        path = f"{path}.options"
        if isinstance(opts, list):
            entries = {str(n): None for n in opts}
        elif isinstance(opts, dict):
            entries = dict(opts)
        else:
            raise ValueError(f"{path}: give a mapping name -> parameters, or a list of names")
        if not entries:
            raise ValueError(f"{path}: an empty choice; allowed {kind} blocks: {_fmt(block_names(kind))}")
    else:
        raise ValueError(
            f"{path}: expected a {kind} block name, {{type: name, param: ...}}, {{choice: [names]}} or "
            f"{{options: {{name: {{param: dim}}}}}}; got {raw!r}"
        )
    out: dict[str, dict[str, Any]] = {}
    for name, params in entries.items():
        name = str(name)
        where = f"{path}.{name}"
        try:
            get_block(kind, name)
        except UnknownBlockError:
            allowed = [n for n in block_names(kind) if n not in exclude]
            raise ValueError(f"{where}: unknown {kind} block {name!r}; allowed: {_fmt(allowed)}") from None
        if name in exclude:
            raise ValueError(f"{where}: {name!r} is not allowed here")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ValueError(f"{where}: expected a mapping of parameters (or null), got {params!r}")
        allowed = _allowed_params(kind, name)
        tree: dict[str, Any] = {}
        for key, value in params.items():
            if key not in allowed:
                raise ValueError(f"{where}.{key}: unknown parameter of {kind} {name!r}; allowed: {_fmt(allowed) or '(none)'}")
            if kind == "attention" and name == "fusion":
                sub_kind = "fusion" if key == "strategy" else "attention"
                tree[key] = _parse_options(value, f"{where}.{key}", sub_kind, exclude=("fusion",) if sub_kind == "attention" else ())
            else:
                tree[key] = parse_dim(value, f"{where}.{key}", param_type=_param_type(allowed[key]))
        out[name] = tree
    return Options(kind, out)


# --------------------------------------------------------------------------------------------- model
def _dim_validator(kind: str | None = None, param_type: Any = None):
    def check(cls: Any, value: Any, info: Any) -> Dim:
        if isinstance(value, (Fixed, Choice, IntRange, FloatRange, Options, Tree)):
            return value
        try:
            return parse_dim(value, info.field_name, kind, param_type)
        except ValueError as e:
            raise ValueError(_relative(str(e), info.field_name)) from None

    return classmethod(check)


def _relative(message: str, field_name: str) -> str:
    """Drop the field name that pydantic already puts in front of the message."""
    for prefix in (f"{field_name}.", f"{field_name}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


class StagesSpace(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, validate_default=True)
    count: Any = 3
    block: Any = "residual"
    depth: Any = 1
    width: Any = Field(default_factory=lambda: {"base": 64, "growth": 2, "max": 512})
    downsample: Any = "maxpool"
    downsample_first: Any = True
    per_stage: list[Literal["block", "depth", "width", "downsample"]] = Field(default_factory=lambda: ["depth"])

    _count = field_validator("count", mode="before")(_dim_validator(param_type=int))
    _block = field_validator("block", mode="before")(_dim_validator("conv"))
    _depth = field_validator("depth", mode="before")(_dim_validator(param_type=int))
    _ds_first = field_validator("downsample_first", mode="before")(_dim_validator(param_type=bool))

    @field_validator("downsample", mode="before")
    @classmethod
    def _downsample(cls, value: Any) -> Dim:
        if isinstance(value, (Fixed, Choice)):
            return value
        dim = parse_dim(value, "downsample", param_type=str)
        for v in _dim_values(dim) or []:
            if v not in DOWNSAMPLE:
                raise ValueError(f"unknown downsampling {v!r}; allowed: {_fmt(DOWNSAMPLE)}")
        if not isinstance(dim, (Fixed, Choice)):
            raise ValueError(f"give a value or a choice of {_fmt(DOWNSAMPLE)}")
        return dim

    @field_validator("width", mode="before")
    @classmethod
    def _width(cls, value: Any) -> Any:
        if isinstance(value, (Progression, Fixed, Choice, IntRange)):
            return value
        if isinstance(value, dict) and not _is_dim_mapping(value):
            unknown = set(value) - {"base", "growth", "max"}
            if unknown or "base" not in value:
                raise ValueError(
                    "a width progression has keys base, growth, max (stage i: min(base * growth**i, max)); "
                    f"got {', '.join(map(str, value))}"
                )
            return Progression(
                parse_dim(value["base"], "width.base", param_type=int),
                parse_dim(value.get("growth", 2), "width.growth", param_type=float),
                parse_dim(value.get("max", 4096), "width.max", param_type=int),
            )
        return parse_dim(value, "width", param_type=int)

    @model_validator(mode="after")
    def _checks(self) -> StagesSpace:
        for name in ("count", "depth"):
            values = _dim_values(getattr(self, name))
            if values is not None and min(values) < 1:
                raise ValueError(f"{name}: must be >= 1, got {min(values)}")
        widths = [self.width.base, self.width.max] if isinstance(self.width, Progression) else [self.width]
        for w in widths:
            values = _dim_values(w)
            if values is not None and min(values) < 1:
                raise ValueError(f"width: must be >= 1, got {min(values)}")
        if isinstance(self.width, Progression):
            g = _dim_values(self.width.growth)
            if g is not None and min(g) <= 0:
                raise ValueError(f"width.growth: must be > 0, got {min(g)}")
        if "width" in self.per_stage and isinstance(self.width, Progression):
            raise ValueError("per_stage: width cannot be drawn per stage when it is a progression (base/growth/max)")
        return self


class AttentionSpace(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, validate_default=True)
    mode: Any = "same"
    type: Any = "none"

    _type = field_validator("type", mode="before")(_dim_validator("attention"))

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Dim:
        if isinstance(value, (Fixed, Choice)):
            return value
        dim = parse_dim(value, "mode", param_type=str)
        if not isinstance(dim, (Fixed, Choice)):
            raise ValueError(f"give a value or a choice of {_fmt(ATTENTION_MODES)}")
        for v in _dim_values(dim):
            if v not in ATTENTION_MODES:
                raise ValueError(f"unknown attention mode {v!r}; allowed: {_fmt(ATTENTION_MODES)}")
        return dim


class Constraints(BaseModel):
    """Inclusive [min, max] bounds (null: unbounded) on properties of a sampled architecture."""

    model_config = ConfigDict(extra="forbid")
    stages: tuple[int | None, int | None] | None = None
    layers: tuple[int | None, int | None] | None = None
    conv_layers: tuple[int | None, int | None] | None = None
    params: tuple[float | None, float | None] | None = None
    flops: tuple[float | None, float | None] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Constraints:
        for name in type(self).model_fields:
            b = getattr(self, name)
            if b is not None and b[0] is not None and b[1] is not None and b[0] > b[1]:
                raise ValueError(f"{name}: impossible range [{b[0]}, {b[1]}]: min is above max")
        return self

    def active(self) -> dict[str, tuple[Any, Any]]:
        return {k: v for k in type(self).model_fields if (v := getattr(self, k)) is not None}


class SearchSpace(BaseModel):
    """A validated search space (see the module docstring for the language)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, validate_default=True)
    name: str | None = None
    description: str = ""
    in_channels: int = Field(3, ge=1)
    num_classes: int = Field(10, ge=2)
    input_size: int = Field(64, ge=8)
    init: Literal["paper", "torch"] = "paper"
    stem: Any = "none"
    stages: StagesSpace = Field(default_factory=StagesSpace)
    attention: AttentionSpace = Field(default_factory=AttentionSpace)
    head: Any = "gap_linear"
    dropblock: Any = "none"
    recipe: Any = Field(default_factory=dict)
    constraints: Constraints = Field(default_factory=Constraints)
    points: dict[str, dict[str, Any]] = Field(default_factory=dict)

    _stem = field_validator("stem", mode="before")(_dim_validator("stem"))
    _head = field_validator("head", mode="before")(_dim_validator("head"))
    _dropblock = field_validator("dropblock", mode="before")(_dim_validator("dropblock"))

    @field_validator("recipe", mode="before")
    @classmethod
    def _recipe(cls, value: Any) -> Tree:
        if isinstance(value, Tree):
            return value
        if value is None:
            return Tree({})
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping of recipe fields to dims, got {value!r}")
        from nasattn.engine import Recipe

        fields = Recipe.model_fields
        items: dict[str, Any] = {}
        for key, raw in value.items():
            if key not in fields:
                raise ValueError(f"{key}: unknown recipe field; allowed: {_fmt(fields)}")
            if key == "epochs":
                raise ValueError("epochs: set the epochs per trial in the study's budget.epochs, not in the space")
            if isinstance(raw, dict) and set(raw) == {"options"}:
                opts = raw["options"]
                entries = {str(n): None for n in opts} if isinstance(opts, list) else dict(opts or {})
                if not entries:
                    raise ValueError(f"{key}.options: an empty choice")
                tree: dict[str, dict[str, Any]] = {}
                for name, params in entries.items():
                    _check_recipe_value(key, name, f"{key}.options.{name}")
                    sub: dict[str, Any] = {}
                    for pk, pv in (params or {}).items():
                        if pk not in fields or pk in ("epochs", key):
                            raise ValueError(f"{key}.options.{name}.{pk}: unknown recipe field; allowed: {_fmt(f for f in fields if f not in ('epochs', key))}")
                        sub[pk] = parse_dim(pv, f"{key}.options.{name}.{pk}")
                        _check_recipe_dim(pk, sub[pk], f"{key}.options.{name}.{pk}")
                    tree[name] = sub
                items[key] = Options("recipe", tree)
                continue
            dim = parse_dim(raw, key)
            _check_recipe_dim(key, dim, key)
            items[key] = dim
        return Tree(items)

    @model_validator(mode="after")
    def _points(self) -> SearchSpace:
        for name, params in self.points.items():
            if not isinstance(params, dict):
                raise ValueError(f"points.{name}: expected a mapping of parameter name -> value")
        return self


def _check_recipe_value(key: str, value: Any, path: str) -> None:
    from pydantic import ValidationError

    from nasattn.engine import Recipe

    try:
        Recipe.model_validate({key: value})
    except ValidationError as e:
        msg = e.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise ValueError(f"{path}: {value!r}: {msg}") from None


def _check_recipe_dim(key: str, dim: Dim, path: str) -> None:
    if isinstance(dim, Fixed):
        _check_recipe_value(key, dim.value, path)
    elif isinstance(dim, Choice):
        for v in dim.values:
            _check_recipe_value(key, v, f"{path}.choice")
    elif isinstance(dim, (IntRange, FloatRange)):
        for v in (dim.lo, dim.hi):
            _check_recipe_value(key, v, path)
    elif isinstance(dim, Tree):
        raise ValueError(f"{path}: a recipe field takes a value or a dim, not a mapping")


def _dim_values(dim: Dim) -> list[Any] | None:
    """Every value of a scalar dim, or None for a continuous one."""
    if isinstance(dim, Fixed):
        return [dim.value]
    if isinstance(dim, Choice):
        return list(dim.values)
    if isinstance(dim, IntRange):
        return [dim.lo, dim.hi] if dim.hi - dim.lo > 100_000 else dim.values()
    if isinstance(dim, FloatRange):
        return dim.values() if dim.step is not None else [dim.lo, dim.hi]
    return None


def _model_at(model: Any, loc: tuple[Any, ...]) -> Any:
    """The pydantic model class reached by following ``loc`` from ``model`` (None if not a model)."""
    import typing

    current = model
    for item in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        if isinstance(item, int):
            continue
        info = current.model_fields.get(str(item))
        if info is None:
            return None
        ann = info.annotation
        # Optional[X] / list[X]: look inside
        for _ in range(3):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                break
            ann = args[0] if args else ann
        current = ann
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def format_errors(model: type[BaseModel], error: Any, source: str | None) -> str:
    """One line per problem, ``source: field.path: message``, naming the allowed fields for unknown keys.

    Messages from our validators that start with a sub-path (``choice: ...``, ``options.foo: ...``)
    are joined onto the field path, so the user sees one dotted path.
    """
    import re

    prefix = f"{source}: " if source else ""
    lines = []
    for err in error.errors(include_url=False):
        loc = tuple(x for x in err["loc"] if not str(x).startswith("function-") and "[" not in str(x))
        path = ""
        for item in loc:
            path += f"[{item}]" if isinstance(item, int) else (("." if path else "") + str(item))
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            allowed = ", ".join(parent.model_fields) if parent is not None else ""
            msg = "unknown field" + (f"; allowed: {allowed}" if allowed else "")
        elif err["type"] == "literal_error":
            expected = (err.get("ctx") or {}).get("expected")
            msg = f"{err.get('input')!r} is not allowed; allowed: {expected}" if expected else msg
        else:
            m = re.match(r"^([A-Za-z_][\w\[\]]*(?:\.[\w\[\]-]+)*): (.*)$", msg, re.S)
            if m and " " not in m.group(1):
                sub, rest = m.group(1), m.group(2)
                last = str(loc[-1]) if loc else ""
                if sub == last or sub.startswith(last + "."):
                    sub = sub[len(last):].lstrip(".")
                path = ".".join(x for x in (path, sub) if x)
                msg = rest
        lines.append(f"{prefix}{path or '(top level)'}: {msg}")
    return "\n".join(lines)


def validate_model(model: type[Any], data: Any, source: str | None) -> Any:
    """``model.model_validate(data)``; problems raise one ConfigError (see :func:`format_errors`)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_errors(model, e, source)) from None


def load_space(source: str | Path | dict, name: str | None = None) -> SearchSpace:
    """Read and validate a space (a YAML path or an already-parsed mapping)."""
    if isinstance(source, SearchSpace):
        return source
    if isinstance(source, dict):
        return validate_model(SearchSpace, source, name or "search space")
    data = read_yaml(source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a search space must be a mapping, got {type(data).__name__}")
    return validate_model(SearchSpace, data, str(source))


# ------------------------------------------------------------------------------------------ sampling
class _Sampler:
    """Walks the space, asking ``trial`` (an Optuna trial, FixedTrial or a recorder) for each dim."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def value(self, dim: Dim, name: str) -> Any:
        t = self.trial
        if isinstance(dim, Fixed):
            return dim.value
        if isinstance(dim, Choice):
            return dim.values[0] if len(dim.values) == 1 else t.suggest_categorical(name, list(dim.values))
        if isinstance(dim, IntRange):
            if dim.lo == dim.hi:
                return dim.lo
            return t.suggest_int(name, dim.lo, dim.hi, step=dim.step, log=dim.log)
        if isinstance(dim, FloatRange):
            if dim.lo == dim.hi:
                return dim.lo
            return t.suggest_float(name, dim.lo, dim.hi, step=dim.step, log=dim.log)
        if isinstance(dim, Options):
            names = list(dim.options)
            chosen = names[0] if len(names) == 1 else t.suggest_categorical(name, names)
            params = {k: self.value(d, f"{name}.{chosen}.{k}") for k, d in dim.options[chosen].items()}
            return {"type": chosen, **params}
        if isinstance(dim, Tree):
            return {k: self.value(d, f"{name}.{k}") for k, d in dim.items.items()}
        raise TypeError(f"not a dim: {dim!r}")


def _attention_dict(comp: dict[str, Any]) -> dict[str, Any]:
    if comp["type"] != "fusion":
        return comp
    out: dict[str, Any] = {"type": "fusion"}
    strategy = comp.get("strategy")
    if strategy is not None:
        out["strategy"] = strategy["type"]
        out.update({k: v for k, v in strategy.items() if k != "type"})
    for branch in ("spatial", "channel"):
        if comp.get(branch) is not None:
            out[branch] = comp[branch]
    return out


def build_arch_dict(space: SearchSpace, trial: Any) -> dict[str, Any]:
    """The ArchSpec dict of the point ``trial`` chooses (no validation)."""
    s = _Sampler(trial)
    st, per = space.stages, set(space.stages.per_stage)
    stem = s.value(space.stem, "stem")
    count = int(s.value(st.count, "stages.count"))

    def shared_or_stage(key: str, dim: Dim, i: int) -> Any:
        return s.value(dim, f"stage{i + 1}.{key}") if key in per else s.value(dim, f"stages.{key}")

    widths: list[int]
    if isinstance(st.width, Progression):
        base = s.value(st.width.base, "stages.width.base")
        growth = s.value(st.width.growth, "stages.width.growth")
        cap = s.value(st.width.max, "stages.width.max")
        widths = [int(min(round(base * growth**i), cap)) for i in range(count)]
    else:
        widths = [int(shared_or_stage("width", st.width, i)) for i in range(count)]
    ds_first = True if "downsample" in per else bool(s.value(st.downsample_first, "stages.downsample_first"))
    mode = s.value(space.attention.mode, "attention.mode")
    shared_att = None
    if mode in ("same", "skip_first"):
        shared_att = _attention_dict(s.value(space.attention.type, "attention"))
    stages = []
    for i in range(count):
        block = shared_or_stage("block", st.block, i)
        depth = int(shared_or_stage("depth", st.depth, i))
        ds = shared_or_stage("downsample", st.downsample, i)
        if i == 0 and not ds_first:
            ds = "none"
        if mode == "per_stage":
            att = _attention_dict(s.value(space.attention.type, f"stage{i + 1}.attention"))
        elif mode == "skip_first" and i == 0:
            att = {"type": "none"}
        else:
            att = shared_att
        stage: dict[str, Any] = {"block": block["type"], "depth": depth, "width": widths[i], "downsample": ds,
                                 "attention": dict(att)}
        params = {k: v for k, v in block.items() if k != "type"}
        if params:
            stage["block_params"] = params
        stages.append(stage)
    head = s.value(space.head, "head")
    db = s.value(space.dropblock, "dropblock")
    db = {"schedule": db.pop("type"), **db}
    arch: dict[str, Any] = {
        "name": None, "in_channels": space.in_channels, "num_classes": space.num_classes,
        "input_size": space.input_size,
        "stem": None if stem["type"] == "none" else stem,
        "stages": stages, "head": head, "dropblock": db, "init": space.init,
    }
    return arch


def sample_recipe(space: SearchSpace, trial: Any) -> dict[str, Any]:
    """Recipe overrides chosen by ``trial`` (``recipe.<field>`` parameters)."""
    s = _Sampler(trial)
    out: dict[str, Any] = {}
    for key, dim in space.recipe.items.items():
        if isinstance(dim, Options):
            names = list(dim.options)
            chosen = names[0] if len(names) == 1 else trial.suggest_categorical(f"recipe.{key}", names)
            out[key] = chosen
            for pk, pd in dim.options[chosen].items():
                out[pk] = s.value(pd, f"recipe.{key}.{chosen}.{pk}")
        else:
            out[key] = s.value(dim, f"recipe.{key}")
    return out


def check_constraints(space: SearchSpace, spec: Any) -> None:
    """Raise :class:`Rejected` when ``spec`` violates one of the space's constraints."""
    active = space.constraints.active()
    if not active:
        return
    values: dict[str, float] = {}
    if "stages" in active:
        values["stages"] = len(spec.stages)
    if "layers" in active:
        values["layers"] = spec.layers
    if "conv_layers" in active:
        values["conv_layers"] = spec.conv_layers
    if "params" in active or "flops" in active:
        from nasattn.models import build_model, profile_model

        prof = profile_model(build_model(spec))
        values["params"], values["flops"] = prof["params"], prof["flops"]
    for key, (lo, hi) in active.items():
        v = values[key]
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise Rejected(f"constraint {key} in [{lo}, {hi}] violated: {key} = {v:g}")


def sample_spec(trial: Any, space: SearchSpace) -> tuple[Any, dict[str, Any]]:
    """Define-by-run: sample an ArchSpec and recipe overrides with ``trial.suggest_*``.

    Raises :class:`Rejected` (with the reason) when the point violates a constraint or is not a
    valid architecture (for example more downsampling stages than the input size allows).
    """
    from nasattn.spec import ArchSpec

    arch = build_arch_dict(space, trial)
    recipe = sample_recipe(space, trial)
    try:
        spec = ArchSpec.from_dict(arch, "sampled architecture")
    except ConfigError as e:
        raise Rejected(str(e).replace("sampled architecture: ", "invalid architecture: ", 1)) from None
    check_constraints(space, spec)
    return spec, recipe


# ---------------------------------------------------------------------------- walking the space
@dataclass
class DimInfo:
    name: str
    dim: Dim
    condition: str = ""  # human-readable: when does this parameter exist


def iter_dims(space: SearchSpace) -> Iterator[DimInfo]:
    """Every Optuna parameter the space can ask for (all branches, stages up to the maximum count)."""

    def walk(dim: Dim, name: str, cond: str) -> Iterator[DimInfo]:
        if isinstance(dim, (Choice, IntRange, FloatRange)):
            if _is_variable(dim):
                yield DimInfo(name, dim, cond)
        elif isinstance(dim, Options):
            if len(dim.options) > 1:
                yield DimInfo(name, Choice(tuple(dim.options)), cond)
            for opt, tree in dim.options.items():
                sub_cond = f"{name} = {opt}" if len(dim.options) > 1 else cond
                for k, d in tree.items():
                    yield from walk(d, f"{name}.{opt}.{k}", sub_cond)
        elif isinstance(dim, Tree):
            for k, d in dim.items.items():
                yield from walk(d, f"{name}.{k}", cond)

    st, per = space.stages, set(space.stages.per_stage)
    yield from walk(space.stem, "stem", "")
    yield from walk(st.count, "stages.count", "")
    max_count = max(_dim_values(st.count))
    min_count = min(_dim_values(st.count))

    def stage_cond(i: int) -> str:
        return f"stages.count >= {i + 1}" if i + 1 > min_count else ""

    for key in ("block", "depth", "width", "downsample"):
        dim = getattr(st, key)
        if key == "width" and isinstance(dim, Progression):
            for sub in ("base", "growth", "max"):
                yield from walk(getattr(dim, sub), f"stages.width.{sub}", "")
        elif key in per:
            for i in range(max_count):
                yield from walk(dim, f"stage{i + 1}.{key}", stage_cond(i))
        else:
            yield from walk(dim, f"stages.{key}", "")
    if "downsample" not in per:
        yield from walk(st.downsample_first, "stages.downsample_first", "")
    yield from walk(space.attention.mode, "attention.mode", "")
    modes = _dim_values(space.attention.mode)
    if any(m in ("same", "skip_first") for m in modes):
        cond = "" if "per_stage" not in modes else "attention.mode != per_stage"
        yield from walk(space.attention.type, "attention", cond)
    if "per_stage" in modes:
        for i in range(max_count):
            c = " and ".join(x for x in ("attention.mode = per_stage" if len(modes) > 1 else "", stage_cond(i)) if x)
            yield from walk(space.attention.type, f"stage{i + 1}.attention", c)
    yield from walk(space.head, "head", "")
    yield from walk(space.dropblock, "dropblock", "")
    for key, dim in space.recipe.items.items():
        yield from walk(dim, f"recipe.{key}", "")


def _is_variable(dim: Dim) -> bool:
    if isinstance(dim, Choice):
        return len(dim.values) > 1
    if isinstance(dim, (IntRange, FloatRange)):
        return dim.lo != dim.hi
    return False


def dim_count(dim: Dim) -> float:
    """Number of values of a dim (``math.inf`` for a continuous range); options sum their subtrees."""
    if isinstance(dim, Fixed):
        return 1
    if isinstance(dim, Choice):
        return len(dim.values)
    if isinstance(dim, IntRange):
        return (dim.hi - dim.lo) // dim.step + 1
    if isinstance(dim, FloatRange):
        if dim.lo == dim.hi:
            return 1
        return len(dim.values()) if dim.step is not None else math.inf
    if isinstance(dim, Options):
        total = 0
        for tree in dim.options.values():
            total += math.prod(dim_count(d) for d in tree.values()) if tree else 1
        return total
    if isinstance(dim, Tree):
        return math.prod(dim_count(d) for d in dim.items.values()) if dim.items else 1
    if isinstance(dim, Progression):
        return dim_count(dim.base) * dim_count(dim.growth) * dim_count(dim.max)
    raise TypeError(dim)


def space_size(space: SearchSpace, recipe: bool = True) -> float:
    """Number of distinct points before constraints (``math.inf`` if any continuous dim is active).

    An upper bound on distinct architectures: different points can build the same network (e.g. a
    width cap above every stage's width), and constraints remove some.
    """
    st, per = space.stages, set(space.stages.per_stage)
    shared = dim_count(space.stem) * dim_count(space.head) * dim_count(space.dropblock)
    if recipe:
        shared *= dim_count(space.recipe)
    if isinstance(st.width, Progression):
        shared *= dim_count(st.width)
    per_stage = 1.0
    for key in ("block", "depth", "width", "downsample"):
        dim = getattr(st, key)
        if isinstance(dim, Progression):
            continue
        if key in per:
            per_stage *= dim_count(dim)
        else:
            shared *= dim_count(dim)
    if "downsample" not in per:
        shared *= dim_count(st.downsample_first)
    att = dim_count(space.attention.type)
    total = 0.0
    for c in _dim_values(st.count):
        stage_part = per_stage**c
        att_part = 0.0
        for mode in _dim_values(space.attention.mode):
            att_part += att**c if mode == "per_stage" else att
        total += stage_part * att_part
    result = shared * total
    return result if math.isinf(result) else int(result)


def grid_values(space: SearchSpace) -> dict[str, list[Any]]:
    """The grid for Optuna's GridSampler: every parameter with its values (floats need a step)."""
    grid: dict[str, list[Any]] = {}
    for info in iter_dims(space):
        dim = info.dim
        if isinstance(dim, Choice):
            grid[info.name] = list(dim.values)
        elif isinstance(dim, IntRange):
            grid[info.name] = dim.values()
        elif isinstance(dim, FloatRange):
            if dim.step is None:
                raise ConfigError(
                    f"sampler grid: {info.name} is a continuous range; give it a step (or a choice) to search a grid"
                )
            grid[info.name] = dim.values()
    return grid


def describe_dim(dim: Dim) -> str:
    if isinstance(dim, Choice):
        return "{" + ", ".join(map(str, dim.values)) + "}"
    if isinstance(dim, IntRange):
        extra = (f" step {dim.step}" if dim.step != 1 else "") + (" log" if dim.log else "")
        return f"int [{dim.lo}, {dim.hi}]{extra}"
    if isinstance(dim, FloatRange):
        extra = (f" step {dim.step:g}" if dim.step else "") + (" log" if dim.log else "")
        return f"float [{dim.lo:g}, {dim.hi:g}]{extra}"
    return repr(dim)


# ------------------------------------------------------------------------------- points and presets
def canonical_arch(arch: Any) -> dict[str, Any]:
    """An ArchSpec as a dict with every block parameter filled with its default (for comparisons)."""
    from nasattn.spec import ArchSpec

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
    from nasattn.spec import ArchSpec

    spec = arch if isinstance(arch, ArchSpec) else ArchSpec.from_dict(arch)
    canon = canonical_arch(spec)
    st, per = space.stages, set(space.stages.per_stage)
    out: dict[str, Any] = {}
    n = len(spec.stages)

    for key in ("in_channels", "num_classes", "input_size", "init"):
        if getattr(spec, key) != getattr(space, key):
            raise NotInSpace(f"{key} = {getattr(spec, key)!r}, but the space has {getattr(space, key)!r}")
    stem = {"type": "none"} if canon["stem"] is None else dict(canon["stem"])
    _invert_component(space.stem, stem, "stem", "stem", out)
    _fits(st.count, n, "stages.count")
    if _is_variable(st.count):
        out["stages.count"] = n

    def per_or_shared(key: str, values: list[Any], check) -> None:
        if key in per:
            for i, v in enumerate(values):
                check(v, f"stage{i + 1}.{key}")
        else:
            if len({repr(v) for v in values}) > 1:
                raise NotInSpace(f"stages differ in {key} ({values}), but {key} is not drawn per stage")
            check(values[0], f"stages.{key}")

    def check_scalar(dim: Dim):
        def check(v: Any, name: str) -> None:
            _fits(dim, v, name)
            if _is_variable(dim):
                out[name] = v
        return check

    blocks = [{"type": s["block"], **{k: v for k, v in s["block_params"].items()}} for s in canon["stages"]]
    per_or_shared("block", blocks, lambda v, name: _invert_component(st.block, v, name, "conv", out))
    per_or_shared("depth", [s.depth for s in spec.stages], check_scalar(st.depth))
    widths = [s.width for s in spec.stages]
    if isinstance(st.width, Progression):
        _invert_progression(st.width, widths, out)
    else:
        per_or_shared("width", widths, check_scalar(st.width))
    ds = [s.downsample for s in spec.stages]
    if "downsample" in per:
        per_or_shared("downsample", ds, check_scalar(st.downsample))
    else:
        rest = ds[1:] or [ds[0] if ds[0] != "none" else next(iter(_dim_values(st.downsample)))]
        per_or_shared("downsample", rest, check_scalar(st.downsample))
        first = ds[0] == rest[0]
        if not first and ds[0] != "none":
            raise NotInSpace(f"the first stage downsamples by {ds[0]!r} and the others by {rest[0]!r}")
        _fits(st.downsample_first, first, "stages.downsample_first")
        if _is_variable(st.downsample_first):
            out["stages.downsample_first"] = first

    atts = [_attention_component(s["attention"]) for s in canon["stages"]]
    modes = _dim_values(space.attention.mode)
    reasons = []
    for mode in ("same", "skip_first", "per_stage"):
        if mode not in modes:
            continue
        trial_out = dict(out)
        try:
            if mode == "same":
                if len({repr(a) for a in atts}) > 1:
                    raise NotInSpace("stages differ in attention")
                _invert_component(space.attention.type, atts[0], "attention", "attention", trial_out)
            elif mode == "skip_first":
                if atts[0]["type"] != "none" or len({repr(a) for a in atts[1:]}) > 1 or n < 2:
                    raise NotInSpace("not: no attention in stage 1 and one attention in the others")
                _invert_component(space.attention.type, atts[1], "attention", "attention", trial_out)
            else:
                for i, a in enumerate(atts):
                    _invert_component(space.attention.type, a, f"stage{i + 1}.attention", "attention", trial_out)
        except NotInSpace as e:
            reasons.append(f"attention.mode {mode}: {e}")
            continue
        if len(modes) > 1:
            trial_out["attention.mode"] = mode
        out = trial_out
        break
    else:
        raise NotInSpace("; ".join(reasons) or "no attention mode allowed")

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


def recipe_point(space: SearchSpace, recipe: dict[str, Any]) -> dict[str, Any]:
    """Parameters for the recipe values that are points of the space (others are skipped)."""
    out: dict[str, Any] = {}
    for key, dim in space.recipe.items.items():
        if key not in recipe:
            continue
        value = recipe[key]
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
    from nasattn.spec import ArchSpec

    try:
        arch_point(space, arch)
        check_constraints(space, arch if isinstance(arch, ArchSpec) else ArchSpec.from_dict(arch))
    except (NotInSpace, Rejected):
        return False
    return True


def preset_points(space: SearchSpace, names: list[str]) -> dict[str, dict[str, Any]]:
    """Optuna parameters of each named preset (architecture, plus recipe values inside the space)."""
    from nasattn.presets import get_preset

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
