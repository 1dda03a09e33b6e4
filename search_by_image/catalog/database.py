"""The collection's SQLite database (`catalog.sqlite` in its saved folder): what a collection
learns at run time, in one embedded store with its own transactions and write-ahead log.

Each module that keeps tables here declares them as `CREATE ... IF NOT EXISTS` statements and
passes them to `connect`, so modules add tables without a central migration list. Connections
use WAL (readers never block the writer, a crash mid-transaction leaves the last committed
state) and `synchronous=FULL` (a committed transaction survives a power cut, not only a crash).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from search_by_image.layout import CATALOG_FILE

#: How long a statement waits for another process's write transaction before failing.
BUSY_TIMEOUT_S = 10.0


def connect(folder: Path, schema: Iterable[str] = (), *, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating when writable) the database of the saved folder `folder`, with `schema`'s
    statements applied. The connection may be shared across threads; callers serialise writes."""
    path = Path(folder) / CATALOG_FILE
    if readonly:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
        use_wal(conn)
        conn.execute("PRAGMA synchronous=FULL")
        with transaction(conn):
            for statement in schema:
                conn.execute(statement)
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def use_wal(conn: sqlite3.Connection, tries: int = 250) -> None:
    """Put the file in WAL mode (it stays so). Two connections switching a new file at the same
    moment: SQLite refuses one at once, without its busy wait; that one retries until it sees WAL."""
    for _ in range(tries):
        if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            time.sleep(0.02)
    conn.execute("PRAGMA journal_mode=WAL")  # its own error, if it still fails


class transaction:
    """`with transaction(conn):` one `BEGIN IMMEDIATE` ... `COMMIT` (rolled back on an
    exception): the write lock is taken at the start, so two writers never deadlock midway."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
