"""Run folders: an exclusive lock for the life of a run, and output checks made before any work starts.

The lock is ``fcntl.flock`` on ``DIR/.nasattn.lock``. The operating system releases it when the holder
exits, however it exits (``kill -9`` included), so a stale lock file never blocks a resume; the file
(mode 0600) records the holder's pid and command for the message a second run gets, and is emptied
when the holder releases it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nasattn.config import ConfigError
from nasattn.schema import LOCK_FILE


class RunFolderBusy(ConfigError):
    """Another process holds the output folder's lock."""


def current_command(argv: list[str] | None = None) -> str:
    """This process's command line as the user typed it (``nasattn search ...``), shell-quoted."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["nasattn", *(shlex.quote(a) for a in args)])


def resume_command(out: str | os.PathLike[str], argv: list[str] | None = None) -> str:
    """The command that continues this one: its arguments, ``--out OUT`` (absolute) and ``--resume``."""
    args = list(sys.argv[1:] if argv is None else argv)
    kept: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in ("--out", "-o"):
            skip = True
        elif not (a == "--resume" or a.startswith("--out=")):
            kept.append(a)
    return current_command([*kept, "--out", str(Path(out).resolve()), "--resume"])


def lock_holder(folder: str | os.PathLike[str]) -> dict | None:
    """The pid and command recorded in ``folder``'s lock file (the last holder's), or None."""
    try:
        return json.loads((Path(folder) / LOCK_FILE).read_text() or "null")
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def lock_run_folder(folder: str | os.PathLike[str], command: str | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if missing) for the body's duration.

    Raises :class:`RunFolderBusy` (a ConfigError: exit 2) naming the holder's pid and command when
    another process holds it. The lock file is left in place; only the lock itself is released, except
    that a folder the lock created and nothing else wrote to (a run refused before any work) is removed.
    """
    folder = check_output_folder(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # O_CLOEXEC by default: children do not inherit it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = lock_holder(folder) or {}
        who = f"pid {holder.get('pid', '?')}" + (f" ({holder['command']})" if holder.get("command") else "")
        raise RunFolderBusy(
            f"{folder} is in use by another run: {who}; wait for it to end, or choose another --out"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command or current_command()}).encode() + b"\n")
        yield folder
    finally:
        if created and os.listdir(folder) == [LOCK_FILE]:
            os.unlink(path)
            folder.rmdir()
        os.ftruncate(fd, 0)  # no pid of a process that has ended is left behind; the file stays for flock
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_run_content(path: Path) -> bool:
    """Whether a folder entry is anything but the lock file."""
    return path.name != LOCK_FILE


def check_output_folder(folder: str | os.PathLike[str]) -> Path:
    """``folder`` resolved, after checking that it is (or can be made) a writable folder.

    A ConfigError names the problem: an existing file, a parent that is a file, or no permission to
    write. Nothing is created.
    """
    folder = Path(folder).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: is a file, not a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--out {folder}: {existing} is a file, so no folder can be made below it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {folder}: no permission to write in {existing}")
    return folder


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` already holds something (a run, a search, anything but the lock file)."""
    return folder.is_dir() and any(is_run_content(p) for p in folder.iterdir())


def next_numbered(folder: Path) -> Path:
    """``folder`` itself when it is free, else the first free ``folder-2``, ``folder-3``, ..."""
    if not folder.exists() or not holds_run(folder):
        return folder
    taken = {p.name for p in folder.parent.iterdir()} if folder.parent.is_dir() else set()
    pattern = re.compile(re.escape(folder.name) + r"-(\d+)$")
    n = max([int(m.group(1)) for m in map(pattern.match, taken) if m] + [1]) + 1
    return folder.with_name(f"{folder.name}-{n}")


def train_output(out: str | os.PathLike[str], *, default: bool, overwrite: bool) -> tuple[Path, str | None]:
    """Where ``nasattn train`` writes, decided before training, and a note saying why when it moved.

    An explicit ``--out`` that holds a run is refused unless ``overwrite``; the default folder moves to
    the next free numbered folder instead. Files and unwritable places are refused (ConfigError).
    """
    folder = check_output_folder(out)
    if holds_run(folder) and not overwrite:
        if default:
            fresh = next_numbered(folder)
            return check_output_folder(fresh), f"{folder} holds an earlier run: writing to {fresh}"
        raise ConfigError(f"--out {folder} is not empty (it holds an earlier run); "
                          "add --overwrite to write over it, or choose another --out")
    return folder, None


def probe_writable(folder: Path) -> None:
    """Create and remove a file in ``folder`` (made if missing), so a read-only place fails at once."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as e:
        raise ConfigError(f"--out {folder}: cannot write there ({e.strerror or e})") from None
