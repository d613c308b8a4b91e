"""Writing files and whole folders so that a failure leaves the old version, never a mix or a temporary file.

- :func:`write_file` writes one file through a temporary file beside it, renamed into place.
- :func:`replace_folder` writes a set of files into a fresh folder beside the target, carries over what
  else the target held (the lock file as a hard link, so the lock stays in force), and swaps the folders.
- A full or read-only disk anywhere (``ENOSPC``, ``EDQUOT``, ``EROFS``, SQLite's "database or disk is
  full") becomes a :class:`DiskError`: one line naming the device, how many MB to free and how to go on.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from nasattn.config import ConfigError

FULL = {errno.ENOSPC, errno.EDQUOT}
READ_ONLY = {errno.EROFS}
SLACK_BYTES = 1 << 20  # room kept free beyond a write's own size (metadata, the file system's reserve)


class DiskError(ConfigError):
    """A write failed (or would fail) because the disk is full or read-only; ``str()`` is the one line:
    ``problem`` (what is wrong and what to free) and ``hint`` (how to go on)."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(f"{problem} and {hint}")
        self.problem, self.hint = problem, hint

    def __reduce__(self) -> tuple[type[DiskError], tuple[str, str]]:  # pickled across Ray processes
        return DiskError, (self.problem, self.hint)


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mount_point(path: str | os.PathLike[str]) -> Path:
    """The mount point of the file system holding ``path`` (or its nearest existing parent)."""
    p = _existing(Path(path))
    dev = p.stat().st_dev
    while p != p.parent and p.parent.stat().st_dev == dev:
        p = p.parent
    return p


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes free to this user on the file system holding ``path``."""
    return shutil.disk_usage(_existing(Path(path))).free


def check_room(path: str | os.PathLike[str], need: int) -> None:
    """Raise OSError (EROFS, ENOSPC) when the file system holding ``path`` is read-only or lacks ``need`` bytes."""
    if os.statvfs(_existing(Path(path))).f_flag & os.ST_RDONLY:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
    if need + SLACK_BYTES > free_bytes(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def full_message(path: str | os.PathLike[str] | None, need: int | None) -> str:
    """``no space left on DEVICE: free N MB`` (N: what ``need`` bytes lack, at least 1); without a path
    (SQLite's "database or disk is full" names none), the device is not named."""
    if path is None:
        return "no space left on the device being written (database or disk is full): free some space"
    free = free_bytes(path)
    short = max(1, math.ceil(((need or 0) + SLACK_BYTES - free) / 1e6)) if need is not None else None
    amount = f"free {short} MB" if short is not None else "free some space"
    return f"no space left on {mount_point(path)} ({free / 1e6:.1f} MB free, writing {path}): {amount}"


def disk_error(error: BaseException, where: str | os.PathLike[str] | None = None, need: int | None = None,
               hint: str = "run the command again") -> DiskError | None:
    """A DiskError for ``error`` (or any exception it was raised from, a Ray task error's cause included)
    when it means a full or read-only disk, else None. ``where``: the path written (default: the error's
    file name). A DiskError found keeps its problem and gets ``hint``."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DiskError):
            return DiskError(error.problem, hint)
        path = where or getattr(error, "filename", None)
        if isinstance(error, OSError) and error.errno in FULL or "database or disk is full" in str(error):
            return DiskError(full_message(path, need), hint)
        if isinstance(error, OSError) and error.errno in READ_ONLY:
            what = f"{path} is on a read-only file system ({mount_point(path)})" if path else \
                "a folder being written is on a read-only file system"
            return DiskError(f"{what}: make it writable or choose another folder", hint)
        error = error.__cause__ or error.__context__ or getattr(error, "cause", None)
    return None


PATH_ERRORS = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM}


def path_error(error: BaseException) -> str | None:
    """One line for a file-system refusal about a named path (a file where a folder belongs, no
    permission), or None for anything else."""
    if not (isinstance(error, OSError) and error.errno in PATH_ERRORS and error.filename):
        return None
    if error.errno in (errno.EEXIST, errno.ENOTDIR):
        return f"{error.filename}: a file stands where a folder is needed ({error.strerror}); choose another place"
    if error.errno == errno.EISDIR:
        return f"{error.filename}: is a folder where a file is needed; give a file name"
    return f"{error.filename}: {error.strerror}; choose another place, or fix its permissions"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_file(path: str | os.PathLike[str], data: bytes | str, hint: str = "run the command again") -> Path:
    """Write ``data`` to ``path`` through ``.NAME.*.tmp`` beside it; on any failure the old file (if any) is
    left as it was and no temporary file remains. A full or read-only disk raises DiskError."""
    path = Path(path)
    blob = data.encode("utf-8") if isinstance(data, str) else data
    try:
        check_room(path.parent, len(blob))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; written files follow the umask like any other
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise disk_error(e, path, len(blob), hint) or e from None
    return path


def replace_folder(folder: str | os.PathLike[str], files: Mapping[str, bytes], replaced: tuple[str, ...] = (),
                   hint: str = "run the command again") -> Path:
    """Make ``folder`` hold ``files`` (name -> bytes), as a whole.

    The files are written into ``.NAME.new-*`` beside ``folder``; entries of the old folder other than
    ``files`` and ``replaced`` (older run files that must not survive into the new run) are carried over
    (regular files as hard links, so a held lock file stays the same file; folders moved); then the old
    folder is renamed away and the new one into place, and the old one removed. On any failure the old
    folder is back as it was and no temporary folder remains. A full or read-only disk raises DiskError.
    """
    folder = Path(folder).absolute()
    need = sum(len(b) for b in files.values())
    try:
        check_room(folder, need)
        folder.parent.mkdir(parents=True, exist_ok=True)
        _swap_in(folder, files, set(files) | set(replaced))
    except OSError as e:
        raise disk_error(e, folder, need, hint) or e from None
    return folder


def _swap_in(folder: Path, files: Mapping[str, bytes], dropped: set[str]) -> None:
    new = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    old: Path | None = None
    moved: list[str] = []
    try:
        os.chmod(new, 0o777 & ~_umask())
        for name, blob in files.items():
            (new / name).write_bytes(blob)
        if folder.is_dir():
            to_move = _link_files(folder, new, dropped)
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            for name in to_move:
                os.rename(folder / name, new / name)
                moved.append(name)
            os.rename(folder, old)  # onto the empty placeholder
        os.rename(new, folder)
    except BaseException:
        _roll_back(folder, new, old, moved)
        raise
    if old is not None:
        _follow_cwd(folder, old)
        shutil.rmtree(old, ignore_errors=True)


def _link_files(folder: Path, new: Path, dropped: set[str]) -> list[str]:
    """Hard-link ``folder``'s files (but ``dropped``) into ``new``; return the other entries (to move)."""
    others = []
    for entry in os.scandir(folder):
        if entry.name in dropped:
            continue
        if entry.is_file(follow_symlinks=False):
            os.link(entry.path, new / entry.name, follow_symlinks=False)
        else:
            others.append(entry.name)
    return others


def _roll_back(folder: Path, new: Path, old: Path | None, moved: list[str]) -> None:
    """Undo a failed swap: the old folder and the entries moved out of it back in place, ``new`` removed."""
    if old is not None and not folder.exists():
        os.rename(old, folder)  # the old folder back where it was
    for name in moved:
        if (new / name).exists():
            os.rename(new / name, folder / name)
    shutil.rmtree(new, ignore_errors=True)
    if old is not None:
        with contextlib.suppress(OSError):
            old.rmdir()  # the empty placeholder (rmdir never removes a folder with content)


def _follow_cwd(folder: Path, old: Path) -> None:
    """When this process's working directory was in ``folder`` (now renamed to ``old``), move it to the
    same place in the new ``folder`` (``nasattn train --out .``)."""
    try:
        cwd = Path(os.getcwd())
    except OSError:
        return
    if cwd == old or old in cwd.parents:
        target = folder / cwd.relative_to(old)
        os.chdir(target if target.is_dir() else folder)
