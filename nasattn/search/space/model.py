"""The validated search-space model (stages, attention, constraints, recipe) and load_space."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nasattn.config import ConfigError, read_yaml, validate
from nasattn.search.space.dims import (
    ATTENTION_MODES, Choice, DOWNSAMPLE, Dim, Fixed, FloatRange, IntRange, Options, Progression, Tree, _fmt,
    _is_dim_mapping, parse_dim,
)
from nasattn.presets import get_preset
from nasattn.recipe import Recipe


def _dim_validator(kind: str | None = None, param_type: Any = None):
    def check(cls: Any, value: Any, info: Any) -> Dim:
        if isinstance(value, (Fixed, Choice, IntRange, FloatRange, Options, Tree)):
            return value
        try:
            return parse_dim(value, info.field_name, kind, param_type)
        except ValueError as e:
            raise ValueError(_relative(str(e), info.field_name)) from None

    return classmethod(check)


def _one_of(value: Any, name: str, allowed: tuple[str, ...], what: str) -> Dim:
    """A fixed value or a choice of strings, each one of ``allowed``."""
    if isinstance(value, (Fixed, Choice)):
        return value
    dim = parse_dim(value, name, param_type=str)
    if not isinstance(dim, (Fixed, Choice)):
        raise ValueError(f"give a value or a choice of {_fmt(allowed)}")
    for v in _dim_values(dim):
        if v not in allowed:
            raise ValueError(f"unknown {what} {v!r}; allowed: {_fmt(allowed)}")
    return dim


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
        return _one_of(value, "downsample", DOWNSAMPLE, "downsampling")

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
        return _one_of(value, "mode", ATTENTION_MODES, "attention mode")


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
    # Set by a study with seeds.recipe = own (not read from a space file): preset name -> its own recipe fields.
    own_recipes: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)

    _stem = field_validator("stem", mode="before")(_dim_validator("stem"))

    @field_validator("own_recipes", mode="before")
    @classmethod
    def _not_in_files(cls, value: Any) -> Any:
        if value:
            raise ValueError("set by a study's seeds: {recipe: own}, not in a search-space file")
        return {}

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
                            allowed = _fmt(f for f in fields if f not in ("epochs", key))
                            raise ValueError(f"{key}.options.{name}.{pk}: unknown recipe field; allowed: {allowed}")
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
        cw = self.recipe.items.get("class_weights")
        if cw is not None and self.num_classes != len(EUROSAT_CLASSES) and PAPER_CLASS_WEIGHTS in _recipe_values(cw):
            raise ValueError(
                f"recipe.class_weights: {PAPER_CLASS_WEIGHTS!r} is the paper's hand-set weights of the "
                f"{len(EUROSAT_CLASSES)} EuroSAT classes ({', '.join(EUROSAT_CLASSES)}), but this space has "
                f"num_classes {self.num_classes}; use none, balanced or effective_number"
            )
        return self


PAPER_CLASS_WEIGHTS = "paper"  # the class_weights choice that stands for the balanced preset's hand-set weights
EUROSAT_CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
    "Residential", "River", "SeaLake",
)


def paper_class_weights() -> list[float]:
    """The author's hand-set weights of the 10 EuroSAT classes (alphabetical order), from the balanced preset."""

    return list(get_preset("balanced").recipe_dict["class_weights"])


def _check_recipe_value(key: str, value: Any, path: str) -> None:
    from pydantic import ValidationError


    if key == "class_weights" and value == PAPER_CLASS_WEIGHTS:
        value = paper_class_weights()
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


def _recipe_values(dim: Dim) -> list[Any]:
    """The values a recipe dim can take (option names for options)."""
    if isinstance(dim, Options):
        return list(dim.options)
    return list(_dim_values(dim) or [])


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


def load_space(source: str | Path | dict, name: str | None = None) -> SearchSpace:
    """Read and validate a space (a YAML path or an already-parsed mapping)."""
    if isinstance(source, SearchSpace):
        return source
    if isinstance(source, dict):
        return validate(SearchSpace, source, name or "search space")
    data = read_yaml(source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a search space must be a mapping, got {type(data).__name__}")
    return validate(SearchSpace, data, str(source))
