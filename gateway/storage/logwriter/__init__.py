"""The log writer: runs the appender's batches in write transactions and stores what they
logged, one implementation per database (the interface is in ``base``).

On SQLite (``sqlite``) a batch's transaction runs on the event loop's thread and its COMMIT on
the one writer connection's, which lets other processes have the writer the moment it returns.
On PostgreSQL
(``postgres``) each batch locks the tree state row ``FOR UPDATE``, so several gateways
sharing the database sequence one after the other.
"""

from __future__ import annotations

from gateway.storage.db import Database, SqliteDatabase
from gateway.storage.logwriter.base import LogWriter
from gateway.storage.logwriter.postgres import PostgresLogWriter
from gateway.storage.logwriter.sqlite import SqliteLogWriter


def log_writer(db: Database) -> LogWriter:
    """The log writer for this database."""
    if isinstance(db, SqliteDatabase):
        return SqliteLogWriter(db)
    return PostgresLogWriter(db)
