"""Walking a space: its dimensions, size, grid values and one-line descriptions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

from nasattn.config import ConfigError
from nasattn.search.space.dims import Choice, Dim, Fixed, FloatRange, IntRange, Options, Progression, Tree
from nasattn.search.space.model import SearchSpace, _dim_values


@dataclass
class DimInfo:
    name: str
    dim: Dim
    condition: str = ""  # human-readable: when does this parameter exist


def iter_dims(space: SearchSpace) -> Iterator[DimInfo]:
    """Every Optuna parameter the space can ask for (all branches, stages up to the maximum count)."""
    yield from _walk(space.stem, "stem", "")
    yield from _walk(space.stages.count, "stages.count", "")
    yield from _stage_dims(space)
    yield from _attention_dims(space)
    yield from _walk(space.head, "head", "")
    yield from _walk(space.dropblock, "dropblock", "")
    for key, dim in space.recipe.items.items():
        yield from _walk(dim, f"recipe.{key}", "")


def _walk(dim: Dim, name: str, cond: str) -> Iterator[DimInfo]:
    """The variable dims under ``dim`` (named from ``name``), existing when ``cond`` holds."""
    if isinstance(dim, (Choice, IntRange, FloatRange)):
        if _is_variable(dim):
            yield DimInfo(name, dim, cond)
    elif isinstance(dim, Options):
        if len(dim.options) > 1:
            yield DimInfo(name, Choice(tuple(dim.options)), cond)
        for opt, tree in dim.options.items():
            sub_cond = f"{name} = {opt}" if len(dim.options) > 1 else cond
            for k, d in tree.items():
                yield from _walk(d, f"{name}.{opt}.{k}", sub_cond)
    elif isinstance(dim, Tree):
        for k, d in dim.items.items():
            yield from _walk(d, f"{name}.{k}", cond)


def _stage_cond(space: SearchSpace, i: int) -> str:
    """When stage ``i`` (0-based) exists: always, or from a stage count on."""
    return f"stages.count >= {i + 1}" if i + 1 > min(_dim_values(space.stages.count)) else ""


def _stage_dims(space: SearchSpace) -> Iterator[DimInfo]:
    """The stage dims: block, depth, width (or its progression), downsample (and downsample_first)."""
    st, per = space.stages, set(space.stages.per_stage)
    max_count = max(_dim_values(st.count))
    for key in ("block", "depth", "width", "downsample"):
        dim = getattr(st, key)
        if key == "width" and isinstance(dim, Progression):
            for sub in ("base", "growth", "max"):
                yield from _walk(getattr(dim, sub), f"stages.width.{sub}", "")
        elif key in per:
            for i in range(max_count):
                yield from _walk(dim, f"stage{i + 1}.{key}", _stage_cond(space, i))
        else:
            yield from _walk(dim, f"stages.{key}", "")
    if "downsample" not in per:
        yield from _walk(st.downsample_first, "stages.downsample_first", "")


def _attention_dims(space: SearchSpace) -> Iterator[DimInfo]:
    """The attention mode and the attention dims of each mode it allows."""
    yield from _walk(space.attention.mode, "attention.mode", "")
    modes = _dim_values(space.attention.mode)
    if any(m in ("same", "skip_first") for m in modes):
        cond = "" if "per_stage" not in modes else "attention.mode != per_stage"
        yield from _walk(space.attention.type, "attention", cond)
    if "per_stage" in modes:
        for i in range(max(_dim_values(space.stages.count))):
            c = " and ".join(x for x in ("attention.mode = per_stage" if len(modes) > 1 else "", _stage_cond(space, i)) if x)
            yield from _walk(space.attention.type, f"stage{i + 1}.attention", c)


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
