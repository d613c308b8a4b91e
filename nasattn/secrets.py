"""Keeping credentials out of what a search writes: masked URLs and files only their owner can read."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

PRIVATE_MODE = 0o600  # files of a run folder that may name a storage, a cluster or a command line
# Finds URL-like tokens inside free text (a command line); each is then parsed by SQLAlchemy's make_url.
_URL_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]+")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (SQLAlchemy's URL parser); other text unchanged."""
    if "://" not in url:
        return url
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return url
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` (str, dict, list) with every URL password in it masked."""
    if isinstance(value, str):
        return _URL_TOKEN.sub(lambda m: mask_url(m.group(0)), value)
    if isinstance(value, dict):
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v) for v in value]
    return value


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` as a file readable and writable by its owner only (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), PRIVATE_MODE)  # an existing file keeps its mode through O_CREAT
        f.write(text)
    return path
