"""The write-ahead log of live adds and deletes: table `live_writes` in the collection's SQLite
database (catalog/database.py), one row per added image or deleted id, numbered by `seq`.

An add or a delete is one SQLite transaction: its COMMIT is the write's commit point (WAL,
synchronous=FULL), so a SIGKILL leaves it whole or absent. No index file is rewritten. The saved
index files are the *base*; their manifest records `folded_seq`, the highest `seq` already in
them. Rows above it are the *delta* that live_store.py lays over the base at load; a fold (or an
indexer run) writes a new base and then removes the rows it folded (`remove_folded`), so a crash
between the two leaves rows at or below `folded_seq`, which readers ignore.

`seq` is AUTOINCREMENT: never reused, even after folded rows are removed, so a process that has
applied rows up to `seq` S catches up with `rows_after(S)` and compares `max_seq` to notice
another process's writes. Image ids come from the one-row `live_ids` counter, moved in the same
transaction as the rows that use them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search_by_image.catalog.database import connect

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS live_writes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        image_id INTEGER NOT NULL,
        path TEXT NOT NULL,
        -- float32 raw descriptor of an add; NULL for a delete (a tombstone)
        descriptor BLOB,
        size INTEGER,
        mtime_ns INTEGER
    )""",
    "CREATE TABLE IF NOT EXISTS live_ids (one INTEGER PRIMARY KEY CHECK (one = 0), next_id INTEGER NOT NULL)",
)


@dataclass(frozen=True)
class Change:
    """One row of the log: an add (with its descriptor and file fingerprint) or a delete."""

    seq: int
    image_id: int
    path: str
    descriptor: np.ndarray | None
    fingerprint: tuple[int, int] | None

    @property
    def deleted(self) -> bool:
        return self.descriptor is None


def open_log(saved_dir: Path) -> sqlite3.Connection:
    """The collection's database with the log's tables (created when missing)."""
    return connect(saved_dir, SCHEMA)


def max_seq(conn: sqlite3.Connection) -> int:
    """The highest `seq` ever written (0: none): a cheap poll for other processes' writes."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'live_writes'").fetchone()
    return int(row[0]) if row else 0


def rows_after(conn: sqlite3.Connection, seq: int) -> list[Change]:
    """Every change with a `seq` above `seq`, in order."""
    cursor = conn.execute(
        "SELECT seq, image_id, path, descriptor, size, mtime_ns FROM live_writes WHERE seq > ? ORDER BY seq",
        (seq,),
    )
    return [
        Change(
            s,
            i,
            p,
            None if blob is None else np.frombuffer(blob, np.float32),
            None if size is None else (int(size), int(mtime)),
        )
        for s, i, p, blob, size, mtime in cursor
    ]


def take_ids(conn: sqlite3.Connection, count: int, at_least: int) -> int:
    """Reserve `count` new ids, never below `at_least` (the base's next free id); the first one.
    Call inside the transaction that writes the rows using them."""
    row = conn.execute("SELECT next_id FROM live_ids WHERE one = 0").fetchone()
    first = max(at_least, int(row[0]) if row else 0)
    conn.execute(
        "INSERT INTO live_ids (one, next_id) VALUES (0, ?) ON CONFLICT (one) DO UPDATE SET next_id = ?",
        (first + count, first + count),
    )
    return first


def append_adds(
    conn: sqlite3.Connection,
    first_id: int,
    paths: Sequence[str],
    descriptors: np.ndarray,
    fingerprints: Sequence[tuple[int, int]],
) -> None:
    """Log added images under ids `first_id`, `first_id + 1`, ... (inside a transaction)."""
    conn.executemany(
        "INSERT INTO live_writes (image_id, path, descriptor, size, mtime_ns) VALUES (?, ?, ?, ?, ?)",
        [
            (first_id + n, path, np.ascontiguousarray(vector, np.float32).tobytes(), size, mtime)
            for n, (path, vector, (size, mtime)) in enumerate(zip(paths, descriptors, fingerprints))
        ],
    )


def append_deletes(conn: sqlite3.Connection, deleted: Sequence[tuple[int, str]]) -> None:
    """Log tombstones for (id, path) pairs (inside a transaction)."""
    conn.executemany("INSERT INTO live_writes (image_id, path) VALUES (?, ?)", list(deleted))


def remove_folded(conn: sqlite3.Connection, folded_seq: int) -> None:
    """Forget the rows a committed base holds (idempotent: rows at or below its `folded_seq`)."""
    conn.execute("DELETE FROM live_writes WHERE seq <= ?", (folded_seq,))


def raise_next_id(conn: sqlite3.Connection, next_id: int) -> None:
    """Keep the id counter at or above a base's next free id (after an indexer run gave out ids)."""
    take_ids(conn, 0, next_id)
