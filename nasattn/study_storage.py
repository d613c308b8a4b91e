"""Where a study lives: storage URLs (SQLite, any SQLAlchemy URL, a journal file) and opening them.

Imports neither Ray nor torch, so reports and tools can read a study through its URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasattn.schema import STUDY_DB


def storage_url(storage: str | None, output: Path) -> str:
    """The storage spec of a study: default ``sqlite:///<output>/study.db``."""
    if storage is None:
        return f"sqlite:///{(output / STUDY_DB).resolve()}"
    if storage.endswith((".log", ".jsonl")) and "://" not in storage and not storage.startswith("journal:"):
        return f"journal:{Path(storage).expanduser().resolve()}"
    if storage.startswith("journal:"):
        return f"journal:{Path(storage[len('journal:'):]).expanduser().resolve()}"
    return storage


def open_storage(url: str):
    """An Optuna storage object for ``url`` (``journal:PATH`` = a JournalStorage file)."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    return optuna.storages.RDBStorage(url, heartbeat_interval=None, engine_kwargs=_engine_kwargs(url))


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def create_or_load_study(url: str, name: str, directions: list[str], metric_names: list[str] | None = None):
    """Create the study once (before any worker touches the storage) or load it; checks directions."""
    import optuna

    from nasattn.config import ConfigError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        storage = open_storage(url)
    except Exception as e:  # noqa: BLE001 - a bad URL, a missing driver, a refused connection
        pg = isinstance(e, ImportError) and url.startswith(("postgresql://", "postgresql+psycopg2://"))
        hint = "; install the PostgreSQL driver: pip install psycopg2-binary" if pg else ""
        raise ConfigError(f"storage {redact(url)}: cannot open: {type(e).__name__}: {e}{hint}") from None
    study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True)
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
    """Hide a password in a database URL for messages."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)
