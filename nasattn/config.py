"""Loading validated YAML configs with errors that name the file, the field path and what is allowed."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from nasattn.schema import ENV_DATA, ExitCode

M = TypeVar("M", bound=BaseModel)


class NasattnError(Exception):
    """Base of every error nasattn reports to its user: the command harness prints ``str()`` (no traceback)
    and exits with ``exit_code`` (:attr:`ExitCode.USAGE` for bad input, :attr:`ExitCode.FAILED` for work
    that failed)."""

    exit_code: ExitCode = ExitCode.USAGE


class ConfigError(NasattnError, ValueError):
    """A config file or value is invalid. ``str()`` is a short, complete message for the user."""


def _loc(loc: tuple[Any, ...]) -> str:
    """``a.b[0].c`` for a pydantic error location, without validator-function and tagged-union parts."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif not str(item).startswith("function-") and "[" not in str(item):
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the field at ``loc`` (None when the path leaves nested models)."""
    import typing

    for item in loc:
        if model is None:
            return None
        if isinstance(item, int):
            continue
        field = model.model_fields.get(str(item))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *typing.get_args(ann)]
        for arg in list(candidates):
            candidates += typing.get_args(arg)  # list[Model], Optional[list[Model]]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


_SUB_PATH = re.compile(r"^([A-Za-z_][\w\[\]]*(?:\.[\w\[\]-]+)*): (.*)$", re.S)


def validation_problems(error: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    """``field.path: message`` for each distinct problem of ``error``.

    An unknown field lists the allowed names of the model that holds it (``model`` is the validated
    class); a literal lists the allowed values; a validator message that starts with a sub-path
    (``choice: ...``) is joined onto the field path.
    """
    lines: list[str] = []
    for err in error.errors(include_url=False):
        loc = tuple(x for x in err["loc"] if not str(x).startswith("function-") and "[" not in str(x))
        path = _loc(loc)
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
            holder = _model_at(model, loc[:-1]) if model is not None else None
            if holder is not None:
                msg += f"; allowed: {', '.join(holder.model_fields)}"
        elif err["type"] == "literal_error" and (err.get("ctx") or {}).get("expected"):
            msg = f"{err.get('input')!r} is not allowed; allowed: {err['ctx']['expected']}"
        else:
            m = _SUB_PATH.match(msg)
            if m and path != "(top level)":
                sub, last = m.group(1), str(loc[-1])
                if sub == last or sub.startswith(last + "."):
                    sub = sub[len(last):].lstrip(".")
                path, msg = ".".join(x for x in (path, sub) if x), m.group(2)
            elif m:
                path, msg = m.group(1), m.group(2)
        line = f"{path}: {msg}"
        if line not in lines:
            lines.append(line)
    return lines


def format_validation_error(error: ValidationError, source: str | None = None,
                            model: type[BaseModel] | None = None) -> str:
    """One line per problem: ``source: field.path: message`` (see :func:`validation_problems`)."""
    prefix = f"{source}: " if source else ""
    return "\n".join(prefix + line for line in validation_problems(error, model))


MAX_YAML_NODES = 100_000  # nodes of a YAML document with every alias expanded (nasattn's own files: < 2,000)


def _expanded_nodes(node: yaml.Node, memo: dict[int, int], path: set[int], limit: int) -> int:
    """How many nodes ``node`` stands for with every alias expanded (aliases share composed nodes)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in path:
        raise ConfigError("a YAML alias refers to itself (a recursive structure)")
    total = 1
    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
        path.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [x for kv in node.value for x in kv]
        for child in children:
            total += _expanded_nodes(child, memo, path, limit)
            if total > limit:
                break
        path.discard(key)
    memo[key] = total
    return total


def safe_yaml(text: str, source: str | None = None, limit: int = MAX_YAML_NODES) -> Any:
    """``yaml.safe_load(text)``, refusing (ConfigError) a document whose aliases expand past ``limit`` nodes.

    PyYAML composes an alias as a reference to its anchor's node, so an alias bomb is cheap to parse and
    costs only when something walks the data as a tree (pydantic, deepcopy). The expanded size is counted
    on the composed node graph, before any Python object is built, in time linear in the file.
    Every YAML file and value nasattn reads goes through here; syntax errors are ConfigErrors too.
    """
    prefix = f"{source}: " if source else ""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_nodes(node, {}, set(), limit) > limit:
            raise ConfigError(f"refused: its YAML aliases (*name) expand to more than {limit:,} values; "
                              "write the values out, or use fewer nested aliases")
        return loader.construct_document(node)
    except ConfigError as e:
        raise ConfigError(prefix + str(e)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{prefix}invalid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file with :func:`safe_yaml`; a missing file or a syntax error becomes a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    return safe_yaml(path.read_text(), str(path))


def validate(model: type[M], data: Any, source: str | None = None) -> M:
    """``model.model_validate(data)`` with a ConfigError that names source and field paths."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, model)) from None


def load_model(model: type[M], path: str | Path, key: str | None = None) -> M:
    """Read ``path`` (optionally its ``key`` section) and validate it as ``model``."""
    data = read_yaml(path)
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise ConfigError(f"{path}: missing section {key!r}")
        data = data[key]
    return validate(model, data, str(path))


def to_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def resolve_data_source(data: str | None, base_dir: Path) -> str | None:
    """A study or ablation file's ``data`` as trials see it (absolute), or ``$NASATTN_DATA`` when unset.

    Bundled names (``eurosat-mini``) and URLs stay as they are. A relative path in the file is relative
    to the file (``base_dir``), falling back to the working directory when only that one exists; the
    environment variable is relative to the working directory.
    """
    if data is None:
        data, base_dir = os.environ.get(ENV_DATA), Path.cwd()
        if data is None:
            return None
    if data.startswith("eurosat-mini") or "://" in data:
        return data
    path = Path(data).expanduser()
    if not path.is_absolute():
        in_base = base_dir / path
        path = in_base if in_base.exists() or not path.exists() else path
    return str(path.resolve())


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
