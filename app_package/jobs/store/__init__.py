"""Where job records live: a SQLite file (`sqlite`: one host, any number of server processes
on it) or PostgreSQL (`postgresql`: shared by workers on any hosts). `open_store(connection)`
chooses by the connection string: `postgresql://…` (or `postgres://`) is PostgreSQL, anything
else the path of a SQLite file."""

from __future__ import annotations

from pathlib import Path

from app_package.jobs.store.base import JobQuery, JobStore, JobStoreUnavailable

__all__ = ["JobQuery", "JobStore", "JobStoreUnavailable", "is_postgres", "open_store"]


def is_postgres(connection: str) -> bool:
    return connection.startswith(("postgresql://", "postgres://"))


def open_store(connection: str) -> JobStore:
    """The store a `manager.connection` setting names (a SQLite path or a PostgreSQL URL)."""
    if is_postgres(connection):
        from app_package.jobs.store.postgresql import PostgresStore

        return PostgresStore(connection)
    from app_package.jobs.store.sqlite import SQLiteStore

    return SQLiteStore(Path(connection))
