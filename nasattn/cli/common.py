"""Shared CLI plumbing: one rich console, and user errors -> a short message and exit code 2."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input rather than a bug: reported without a traceback."""
    from nasattn.config import ConfigError
    from nasattn.registry import UnknownBlockError

    errors: list[type[BaseException]] = [ConfigError, UnknownBlockError, FileNotFoundError]
    try:
        from nasattn.data import DataError, DataNotFoundError

        errors += [DataError, DataNotFoundError]
    except ImportError:  # pragma: no cover - data package missing only mid-development
        pass
    return tuple(errors)


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_user_errors(fn: F) -> F:
    """Decorator for commands: user errors print one message and exit with code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except user_errors() as e:
            raise fail(str(e)) from None

    return wrapper  # type: ignore[return-value]


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> nested dict with YAML-parsed values (for ``--set``)."""
    import yaml

    from nasattn.config import ConfigError

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. budget.trials=20)")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
