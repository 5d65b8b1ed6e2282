"""The log writer: runs the appender's batches in write transactions and stores what they
logged, one implementation per database (the interface is in ``base``).

On SQLite (``sqlite``) batches are pipelined on the one writer connection: the next batch's
works run while the COMMIT of the one before is on its way to the disk. On PostgreSQL
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
