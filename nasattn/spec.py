"""ArchSpec: a typed, validated, YAML/JSON-serialisable description of a network built from the registry.

A spec is concrete: every width is a channel count. ``spec.scaled(width_mult)`` gives a slimmer or
wider copy. Components (stem, attention, head) are ``{type: <registered name>, <param>: value, ...}``;
their parameters are checked against the registered block's signature.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nasattn.config import ConfigError, safe_yaml, to_yaml, validate
from nasattn.registry import UnknownBlockError, get_block

# Parameters that are widths (channel counts) and therefore follow the width multiplier.
WIDTH_PARAMS = ("hidden", "conv_width")
DEFAULT_DROPBLOCK_LAW = "torchvision"
# Conv blocks that do not say how many main-path convolutions they hold (a ``num_convs`` class
# attribute) count as one in ``ArchSpec.conv_layers``.
DEFAULT_NUM_CONVS = 1


# Allowed ranges of block parameters, by name: (lowest, highest or None, whether highest is allowed).
# A block adds or overrides entries with a ``param_ranges`` attribute (same form) on its class or function.
PARAM_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "reduction": (1, None, True),
    "min_channels": (1, None, True),
    "hidden": (1, None, True),
    "conv_width": (0, None, True),
    "kernel_size": (1, None, True),
    "dropout": (0, 1, False),
}


def _range_error(kind: str, name: str, key: str, value: float, ranges: dict[str, tuple]) -> str | None:
    if key not in ranges:
        return None
    low, high, high_allowed = ranges[key]
    if value < low or (high is not None and (value > high or (value == high and not high_allowed))):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}{']' if high_allowed else ')'}"
        return f"{kind} {name!r} parameter {key!r} must be {allowed}, got {value!r}"
    return None


def param_type_of(default: Any) -> type | None:
    """The type a block parameter takes, from its default (bool, int, float or str; None: anything)."""
    for t in (bool, int, float, str):
        if isinstance(default, t):
            return t
    return None


def type_mismatch(value: Any, expected: type | None) -> str | None:
    """What ``value`` must be when it is not of the parameter type ``expected`` (None when it fits).

    An integer fits a float parameter, an integral float fits an int one, and a bool is not a number.
    """
    if expected is None or value is None:
        return None
    if expected is bool:
        return None if isinstance(value, bool) else "true or false"
    if expected in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "a number"
        if expected is int and isinstance(value, float) and not value.is_integer():
            return "an integer"
        return None
    if expected is str and not isinstance(value, str):
        return "a string"
    return None


def _check_params(kind: str, name: str, params: dict[str, Any], reserved: tuple[str, ...] = ()) -> None:
    try:
        info = get_block(kind, name)
    except UnknownBlockError as e:
        raise ValueError(str(e)) from None
    allowed = {k: v for k, v in info.params.items() if k not in reserved}
    for key, value in params.items():
        if key not in allowed:
            raise ValueError(
                f"unknown parameter {key!r} for {kind} {name!r}; allowed: {', '.join(allowed) or '(none)'}"
            )
        expected = param_type_of(allowed[key])
        wrong = type_mismatch(value, expected)
        if wrong:
            raise ValueError(f"{kind} {name!r} parameter {key!r} must be {wrong}, got {value!r}")
        if expected in (int, float):
            problem = _range_error(kind, name, key, value, {**PARAM_RANGES, **getattr(info.factory, "param_ranges", {})})
            if problem:
                raise ValueError(problem)


class Component(BaseModel):
    """A registered block and its parameters: ``{type: name, **params}``."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str] = ""
    type: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _registered(self) -> Component:
        _check_params(self.kind, self.type, self.params)
        return self


class StemSpec(Component):
    kind: ClassVar[str] = "stem"
    type: str = "conv"
    width: int = Field(64, ge=1)


class HeadSpec(Component):
    kind: ClassVar[str] = "head"
    type: str = "gap_linear"


class AttentionSpec(Component):
    """An attention block; ``type: fusion`` combines ``spatial`` and ``channel`` with a ``strategy``."""

    kind: ClassVar[str] = "attention"
    type: str = "none"

    @model_validator(mode="after")
    def _registered(self) -> AttentionSpec:
        if self.type != "fusion":
            return super()._registered()
        extra = self.params
        strategy = extra.pop("strategy", "learnable_alpha")
        if not isinstance(strategy, str):
            raise ValueError(f"fusion strategy must be a name, got {strategy!r}")
        for branch in ("spatial", "channel"):
            value = extra.pop(branch, None)
            if value is None:
                continue
            if not isinstance(value, dict) or "type" not in value:
                raise ValueError(f"fusion {branch} must be an attention like {{type: coord}}, got {value!r}")
            if value["type"] == "fusion":
                raise ValueError(f"fusion {branch} cannot itself be a fusion block")
            _check_params("attention", value["type"], {k: v for k, v in value.items() if k != "type"})
        _check_params("fusion", strategy, extra)
        return self


class StageSpec(BaseModel):
    """``depth`` blocks of one type at one width; ``downsample`` halves the resolution at the stage's
    start (``stride``: the first block has stride 2) or end (``maxpool``: 2x2 max-pool after the last block)."""

    model_config = ConfigDict(extra="forbid")
    block: str = "residual"
    depth: int = Field(1, ge=1, le=64)
    width: int = Field(..., ge=1)
    downsample: Literal["none", "maxpool", "stride"] = "none"
    attention: AttentionSpec = Field(default_factory=AttentionSpec)
    block_params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("block")
    @classmethod
    def _block_registered(cls, block: str) -> str:
        _check_params("conv", block, {})
        return block

    @model_validator(mode="after")
    def _registered(self) -> StageSpec:
        _check_params("conv", self.block, self.block_params)
        return self


class DropBlockSpec(Component):
    """``schedule`` (none/constant/progressive) with its rates; ``block_size``; ``ramp_epochs`` from p=0;
    ``law``: how the mask is drawn, a registered ``dropblock_law`` (``torchvision``, the default, or
    ``paper``, the paper author's; see :mod:`nasattn.blocks.dropblock`). ``law`` is written out only when
    it is not the default."""

    kind: ClassVar[str] = "dropblock"
    type: str = Field("none", alias="schedule")
    block_size: int = Field(7, ge=1)
    ramp_epochs: int = Field(0, ge=0)
    law: str = Field(DEFAULT_DROPBLOCK_LAW, exclude_if=lambda v: v == DEFAULT_DROPBLOCK_LAW)
    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)

    @field_validator("law")
    @classmethod
    def _law_registered(cls, law: str) -> str:
        try:
            get_block("dropblock_law", law)
        except UnknownBlockError as e:
            raise ValueError(str(e)) from None
        return law

    @model_validator(mode="after")
    def _rates(self) -> DropBlockSpec:
        for key, value in self.params.items():
            if isinstance(value, (int, float)) and not 0.0 <= value < 1.0:
                raise ValueError(f"drop probability {key}={value} must be in [0, 1)")
        return self


class ArchSpec(BaseModel):
    """A whole network: stem -> stages -> head, plus the DropBlock schedule over the stages."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    in_channels: int = Field(3, ge=1)
    num_classes: int = Field(10, ge=2)
    input_size: int = Field(64, ge=8)
    stem: StemSpec | None = None
    stages: list[StageSpec] = Field(..., min_length=1)
    head: HeadSpec = Field(default_factory=HeadSpec)
    dropblock: DropBlockSpec = Field(default_factory=DropBlockSpec)
    init: Literal["paper", "torch"] = "paper"

    @model_validator(mode="after")
    def _fits_input(self) -> ArchSpec:
        size = self.input_size // (self.stem.params.get("stride", 1) if self.stem else 1)
        for i, stage in enumerate(self.stages):
            if stage.downsample != "none":
                if size < 2:
                    raise ValueError(
                        f"stages[{i}]: downsampling a {size}x{size} feature map is impossible "
                        f"(input_size {self.input_size}); remove a downsampling stage or raise input_size"
                    )
                size //= 2
        return self

    # ---------------------------------------------------------------- derived views
    def stage_drop_probs(self) -> list[float]:
        """The drop probability of each stage under the DropBlock schedule (before any epoch ramp)."""
        fn = get_block("dropblock", self.dropblock.type).factory
        return list(fn(len(self.stages), **self.dropblock.params))

    @property
    def layers(self) -> int:
        """The paper's layer count: stem + blocks + a head's 1x1 conv."""
        stem = 0 if self.stem is None or self.stem.type == "none" else 1
        head = 1 if self.head.params.get("conv_width", 0) else 0
        return stem + sum(s.depth for s in self.stages) + head

    @property
    def conv_layers(self) -> int:
        """Main-path convolutions (attention internals and shortcut projections excluded).

        A block counts its class attribute ``num_convs``; a block without one counts ``DEFAULT_NUM_CONVS``.
        """
        stem = getattr(get_block("stem", self.stem.type).factory, "num_convs", 1) if self.stem else 0
        blocks = sum(s.depth * getattr(get_block("conv", s.block).factory, "num_convs", DEFAULT_NUM_CONVS)
                     for s in self.stages)
        head = 1 if self.head.params.get("conv_width", 0) else 0
        return stem + blocks + head

    def scaled(self, width_mult: float, divisor: int = 8) -> ArchSpec:
        """A copy with every width multiplied by ``width_mult`` (rounded to a multiple of ``divisor``)."""
        if width_mult <= 0:
            raise ConfigError(f"width_mult must be > 0, got {width_mult}")
        if width_mult == 1.0:
            return ArchSpec.from_dict(self.to_dict())

        def w(c: int) -> int:
            if c <= 0:  # 0 means "none" (conv_width); a negative width stays invalid and is rejected below
                return c
            return max(divisor, int(math.floor(c * width_mult / divisor + 0.5)) * divisor)

        data = self.to_dict()
        if data.get("stem"):
            data["stem"]["width"] = w(data["stem"]["width"])
        for stage in data["stages"]:
            stage["width"] = w(stage["width"])
        for key in WIDTH_PARAMS:
            if data["head"].get(key):
                data["head"][key] = w(data["head"][key])
        return ArchSpec.from_dict(data)

    def with_dropblock_law(self, law: str) -> ArchSpec:
        """A validated copy whose DropBlock draws its mask with the registered law ``law``."""
        data = self.to_dict()
        data["dropblock"]["law"] = law
        return ArchSpec.from_dict(data)

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> ArchSpec:
        return validate(cls, data, source)

    def to_yaml(self) -> str:
        return to_yaml(self.to_dict())

    @classmethod
    def from_yaml(cls, text: str, source: str | None = None) -> ArchSpec:
        return cls.from_dict(safe_yaml(text, source), source)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def arch_summary(config: dict[str, Any], with_name: bool = True) -> str:
    """One line for an architecture: ``name: blocks dDEPTHS wWIDTHS att=ATTENTION db=DROPBLOCK head``.

    ``config`` holds ``arch`` (an ArchSpec dict) and optionally ``width_mult``; fused attention is written
    ``fusion:<strategy>``. The one spelling used by search output, ``nasattn space`` and ``ablate --dry-run``.
    """
    arch = config.get("arch") or {}
    stages = arch.get("stages") or []
    if not stages:
        return str(config.get("name", ""))
    blocks = sorted({s.get("block", "?") for s in stages})
    atts = []
    for s in stages:
        a = (s.get("attention") or {}).get("type", "none")
        if a == "fusion":
            a = f"fusion:{(s.get('attention') or {}).get('strategy', 'learnable_alpha')}"
        atts.append(a)
    att = atts[0] if len(set(atts)) == 1 else "/".join(atts)
    depth = "-".join(str(s.get("depth", 1)) for s in stages)
    width = "-".join(str(s.get("width", "?")) for s in stages)
    if config.get("width_mult") not in (None, 1, 1.0):
        width += f" x{config['width_mult']:g}"  # the trial scales these widths
    db = (arch.get("dropblock") or {}).get("schedule", "none")
    head = (arch.get("head") or {}).get("type", "")
    name = f"{arch['name']}: " if arch.get("name") and with_name else ""
    return f"{name}{'/'.join(blocks)} d{depth} w{width} att={att} db={db} {head}"
