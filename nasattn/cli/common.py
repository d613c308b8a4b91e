"""The command harness every long command runs under, and shared CLI plumbing.

:func:`handle_user_errors` wraps a command: SIGINT/SIGTERM outside Tune raise
:class:`~nasattn.interrupt.Interrupted` (one line, exit 130/143), a :class:`~nasattn.config.NasattnError`
prints its message without a traceback and exits with its code (2 for bad input, 1 when every run of a
study failed). Commands lock their output folder with :func:`nasattn.rundir.lock_run_folder` and end an
interrupted study with :func:`interrupted_line`.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Callable, TypeVar

import typer

from nasattn.config import ConfigError, NasattnError, safe_yaml
from nasattn.interrupt import Interrupted, catch_interrupts
from nasattn.safewrite import disk_error, path_error
from nasattn.say import make_console
from nasattn.schema import ExitCode

console = make_console()
err_console = make_console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
RESUMABLE = ("_search", "_ablate", "_fidelity")  # commands whose --resume continues after a full disk


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (or work that failed as a whole) rather than a bug: no traceback."""
    return (NasattnError, FileNotFoundError)


def fail(message: str, code: int = ExitCode.USAGE) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(int(code))


def handle_user_errors(fn: F) -> F:
    """The command harness: a signal before any result -> one line and 130/143; a user error -> its
    message and its exit code (2, or 1 for a study whose every run failed), without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with catch_interrupts():
                return fn(*args, **kwargs)
        except Interrupted as e:
            err_console.print(f"interrupted ({e}) before any result was written",
                              highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except user_errors() as e:
            raise fail(str(e), getattr(e, "exit_code", ExitCode.USAGE)) from None
        except Exception as e:
            message = disk_error(e, hint="rerun with --resume" if fn.__name__ in RESUMABLE else "run the command again")
            message = message or path_error(e)
            if message is None:
                raise
            raise fail(str(message)) from None

    return wrapper  # type: ignore[return-value]


def parse_seeds(value: str | None, example: str = "0,1,2") -> list[int] | None:
    """``--seeds 0,1,2`` -> ``[0, 1, 2]`` (None when not given); anything else is a ConfigError."""
    if value is None:
        return None
    try:
        seeds = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {value!r}: expected integers separated by commas, e.g. {example}") from None
    if not seeds:
        raise ConfigError(f"--seeds: give at least one seed, e.g. {example}")
    return seeds


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> nested dict with YAML-parsed values (for ``--set``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. budget.trials=20)")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):
            raise ConfigError(f"--set {item!r}: the key {key!r} is not a field path like budget.trials")
        try:
            parsed = safe_yaml(value)
        except ConfigError as e:
            raise ConfigError(
                f"--set {item!r}: the value {value!r} is not valid YAML ({e}); "
                "quote text, e.g. --set 'name=\"a b\"', and give lists as [1, 2]"
            ) from None
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} was already given a value")
            node = child
        node[parts[-1]] = parsed
    return out


def check_device(device: str) -> None:
    """A ConfigError when ``device`` (auto, cpu, cuda, cuda:N, mps) is not usable here, before any work starts."""
    if device in ("auto", "cpu"):
        return
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if m:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"--device {device}: no CUDA GPU is visible to torch here; use --device cpu (or auto)")
        if m.group(1) is not None and int(m.group(1)) >= n:
            raise ConfigError(f"--device {device}: only {n} GPU(s) visible (cuda:0..cuda:{n - 1})")
        return
    if device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ConfigError("--device mps: Apple's MPS backend is not available here; use --device cpu (or auto)")
        return
    raise ConfigError(f"--device {device!r}: allowed: auto, cpu, cuda, cuda:N, mps")


def interrupted_line(result: Any, finished: int, resume_command: str) -> None:
    """The one line after a SIGINT/SIGTERM stopped a study, then exit 130/143 (``128 + signal``)."""
    err_console.print(
        f"interrupted: {finished} finished, {result.checkpointed} checkpointed; continue with `{resume_command}`",
        highlight=False, soft_wrap=True,
    )
    raise typer.Exit(int(ExitCode(128 + result.interrupted)))


def plural(n: float, word: str) -> str:
    """``word`` or ``word + "s"`` to go with the count ``n``."""
    return word if n == 1 else word + "s"


def data_flag(value: str) -> str:
    """A ``--data`` flag's value for a study or ablation file: paths absolute (relative to the working directory)."""
    if value.startswith("eurosat-mini") or "://" in value:
        return value
    return str(Path(value).expanduser().resolve())
