"""Where a study lives: storage URLs (SQLite, any SQLAlchemy URL, a journal file) and opening them.

Imports neither Ray nor torch, so reports and tools can read a study through its URL. A study names its
storage as a URL or as ``{url_env: NAME}`` (the URL is read from that environment variable when the
search runs, so no file keeps it); every URL shown or written is masked (:mod:`nasattn.secrets`).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any

from nasattn.config import ConfigError
from nasattn.schema import STUDY_DB
from nasattn.secrets import PRIVATE_MODE, mask_secrets

SQLITE_HEADER = b"SQLite format 3\x00"
CREATE_RACE_TRIES = 5  # openings of a storage that lost the race to create its tables (see _lost_create_race)
CREATE_RACE_WAIT_S = 0.1  # the wait before the next opening grows by this much each time


def env_name(storage: Any) -> str | None:
    """The environment variable a study's storage names (``{url_env: NAME}``), else None."""
    name = storage.get("url_env") if isinstance(storage, dict) else getattr(storage, "url_env", None)
    return str(name) if name else None


def storage_url(storage: Any, output: Path) -> str:
    """The storage URL of a study: default ``sqlite:///<output>/study.db``; ``{url_env: NAME}`` reads ``$NAME``."""
    name = env_name(storage)
    if name is not None:
        storage = os.environ.get(name)
        if not storage:
            raise ConfigError(f"storage: url_env {name}: the environment variable {name} is not set; "
                              f"export {name}=<the study's storage URL> and run again")
    if storage is None:
        return f"sqlite:///{(output / STUDY_DB).resolve()}"
    if storage.endswith((".log", ".jsonl")) and "://" not in storage and not storage.startswith("journal:"):
        return f"journal:{Path(storage).expanduser().resolve()}"
    if storage.startswith("journal:"):
        return f"journal:{Path(storage[len('journal:'):]).expanduser().resolve()}"
    return storage


def open_storage(url: str):
    """An Optuna storage object for ``url`` (``journal:PATH`` = a JournalStorage file)."""
    import optuna  # lazy: optuna is a heavy optional package

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage  # lazy: optuna is a heavy optional package

        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    from sqlalchemy.exc import DBAPIError  # lazy: comes with optuna

    tries = 0
    while True:
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=None, engine_kwargs=_engine_kwargs(url))
        except DBAPIError as e:
            tries += 1
            if tries == CREATE_RACE_TRIES or not _lost_create_race(e):
                raise
            time.sleep(CREATE_RACE_WAIT_S * tries)


def _lost_create_race(error: Exception) -> bool:
    """Whether opening failed because another process created Optuna's tables at the same moment.

    RDBStorage creates its tables when they are missing (SQLAlchemy's check-then-create), so two processes
    opening a new database together (a search starting while a dashboard or a reader opens its study.db)
    can both decide to create a table; the slower one fails. Opened again, it finds the tables there.
    """
    text = str(error).lower()
    return any(sign in text for sign in ("already exists", "duplicate key", "unique constraint failed"))


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URL, else None."""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def check_existing_sqlite(url: str) -> None:
    """A ConfigError when an SQLite URL names a file that exists but is empty or not an SQLite database."""
    path = sqlite_path(url)
    if path is None or not path.exists():
        return
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_HEADER))
    if head != SQLITE_HEADER:
        what = "is empty" if not head else "is not an SQLite database"
        raise ConfigError(f"storage {path}: {what}; the study cannot be read from it "
                          "(restore the file from a copy, or start a new search in another --out)")


def _missing_driver_hint(url: str, error: Exception) -> str:
    """An install hint when opening failed because the database's driver is not installed."""
    pg = url.startswith(("postgresql://", "postgresql+psycopg2://"))
    if pg and isinstance(error, ImportError) and importlib.util.find_spec("psycopg2") is None:
        return "; install the PostgreSQL driver: pip install psycopg2-binary"
    return ""


def create_or_load_study(url: str, name: str, directions: list[str], metric_names: list[str] | None = None):
    """Create the study once (before any worker touches the storage) or load it; checks directions.

    A new SQLite database file is created with mode 0600; an existing one must be an SQLite database.
    """
    import optuna  # lazy: optuna is a heavy optional package

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = sqlite_path(url)
    if path is not None:
        if path.is_file() and path.stat().st_size:  # an empty file is one this function created
            check_existing_sqlite(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_MODE))  # SQLite fills an empty file
    try:
        storage = open_storage(url)
        study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True)
    except Exception as e:  # noqa: BLE001 - a bad URL, a missing driver, a refused connection
        raise ConfigError(f"storage {redact(url)}: cannot open: {type(e).__name__}: "
                          f"{redact(str(e))}{_missing_driver_hint(url, e)}") from None
    if [d.name.lower() for d in study.directions] != [d.lower() for d in directions]:
        raise ConfigError(
            f"storage {redact(url)}: study {name!r} exists with directions "
            f"{[d.name.lower() for d in study.directions]}, not {directions}; use another study_name"
        )
    if metric_names is not None and study.metric_names != list(metric_names):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(metric_names))
    return study


def redact(url: str) -> str:
    """``url`` (or a message holding URLs) with every password masked (:func:`nasattn.secrets.mask_url`)."""
    return mask_secrets(url)
