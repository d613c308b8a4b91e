"""Dimensions of a search space (fixed values, choices, ranges, block options) and their parsing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nasattn.config import NasattnError
from nasattn.registry import UnknownBlockError, block_names, get_block
from nasattn.spec import param_type_of, type_mismatch


DIM_KEYS = ("choice", "int", "float", "options")
ATTENTION_MODES = ("same", "skip_first", "per_stage")
DOWNSAMPLE = ("none", "maxpool", "stride")
# Parameters a kind accepts besides its registered block's constructor parameters.
_EXTRA_PARAMS: dict[str, dict[str, Any]] = {
    "stem": {"width": 64},
    "dropblock": {"block_size": 7, "ramp_epochs": 0},
}
_FUSION_KEYS = ("strategy", "spatial", "channel")


class Rejected(NasattnError):
    """A sampled point violates a constraint (or is not a valid ArchSpec); ``str()`` says why."""


class NotInSpace(NasattnError):
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
        return _parse_dim_mapping(raw, path, param_type)
    if isinstance(raw, dict):
        return Tree({str(k): parse_dim(v, f"{path}.{k}") for k, v in raw.items()})
    _check_type(raw, param_type, path)
    return Fixed(raw)


def _parse_dim_mapping(raw: dict[str, Any], path: str, param_type: Any) -> Dim:
    """A ``{choice: ...}``, ``{int: ...}`` or ``{float: ...}`` dim (``options:`` is refused here)."""
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
        return _parse_choice(raw["choice"], path, param_type)
    if key == "options":
        raise ValueError(f"{path}: options: is only allowed where a block is chosen "
                         "(stem, block, attention, head, dropblock) or for a recipe field")
    return _parse_range(raw, key, path, param_type)


def _parse_choice(values: Any, path: str, param_type: Any) -> Choice:
    """A ``choice:`` of distinct scalars of the parameter's type."""
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


def _parse_range(raw: dict[str, Any], key: str, path: str, param_type: Any) -> Dim:
    """An ``int:`` or ``float:`` range ``[low, high]`` with its ``step`` and ``log``."""
    bounds = raw[key]
    numbers = all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds) if isinstance(bounds, list) else False
    if not (isinstance(bounds, list) and len(bounds) == 2 and numbers):
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
        return _int_range(bounds, step, log, path, param_type)
    if step is not None and not math.isclose(((hi - lo) / step) - round((hi - lo) / step), 0, abs_tol=1e-9):
        raise ValueError(f"{path}.float: range [{lo}, {hi}] is not a whole number of steps of {step}")
    if param_type is int:
        raise ValueError(f"{path}: this parameter is an integer; use int: instead of float:")
    _check_type(float(lo), param_type, f"{path}.float")
    return FloatRange(float(lo), float(hi), None if step is None else float(step), log)


def _int_range(bounds: list[Any], step: Any, log: bool, path: str, param_type: Any) -> IntRange:
    """An ``int:`` range: integer bounds and step, a whole number of steps, step 1 when ``log``."""
    lo, hi = bounds
    if not all(float(b).is_integer() for b in bounds) or (step is not None and not float(step).is_integer()):
        raise ValueError(f"{path}.int: bounds and step must be integers, got {bounds} step {step}")
    if log and step not in (None, 1):
        raise ValueError(f"{path}: an int log range must have step 1")
    dim = IntRange(int(lo), int(hi), int(step or 1), log)
    if (dim.hi - dim.lo) % dim.step:
        raise ValueError(f"{path}.int: range [{lo}, {hi}] is not a whole number of steps of {step}")
    _check_type(int(lo), param_type, f"{path}.int")
    return dim


def _check_type(value: Any, param_type: type | None, path: str) -> None:
    wrong = type_mismatch(value, param_type)
    if wrong:
        raise ValueError(f"{path}: {value!r} must be {wrong}")


def _allowed_params(kind: str, name: str) -> dict[str, Any]:
    params = dict(get_block(kind, name).params)
    params.update(_EXTRA_PARAMS.get(kind, {}))
    if kind == "attention" and name == "fusion":
        params = {k: None for k in _FUSION_KEYS}
    return params


def _parse_options(raw: Any, path: str, kind: str, exclude: tuple[str, ...] = ()) -> Options:
    """A block choice of ``kind``: a name, {type: name, ...}, {choice: [names]} or {options: ...}."""
    entries, path = _option_entries(raw, path, kind)
    return Options(kind, {str(name): _parse_option(kind, str(name), params, f"{path}.{name}", exclude)
                          for name, params in entries.items()})


def _option_entries(raw: Any, path: str, kind: str) -> tuple[dict[str, Any], str]:
    """``({block name: its parameters or None}, the path of the entries)`` of a block choice."""
    if isinstance(raw, str):
        return {raw: None}, path
    if isinstance(raw, dict) and "type" in raw and not _is_dim_mapping(raw):
        return {raw["type"]: {k: v for k, v in raw.items() if k != "type"}}, path
    if isinstance(raw, dict) and set(raw) == {"choice"}:
        if not isinstance(raw["choice"], list) or not raw["choice"]:
            raise ValueError(f"{path}.choice: an empty choice; allowed {kind} blocks: {_fmt(block_names(kind))}")
        return {str(n): None for n in raw["choice"]}, f"{path}.choice"
    if isinstance(raw, dict) and set(raw) == {"options"}:
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
        return entries, path
    raise ValueError(
        f"{path}: expected a {kind} block name, {{type: name, param: ...}}, {{choice: [names]}} or "
        f"{{options: {{name: {{param: dim}}}}}}; got {raw!r}"
    )


def _parse_option(kind: str, name: str, params: Any, where: str, exclude: tuple[str, ...]) -> dict[str, Any]:
    """The parameter dims of one block ``name`` of a choice (a registered block not in ``exclude``)."""
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
            tree[key] = parse_dim(value, f"{where}.{key}", param_type=param_type_of(allowed[key]))
    return tree
