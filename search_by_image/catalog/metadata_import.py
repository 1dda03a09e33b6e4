"""The metadata CSV in and out of the collection's database (metadata_store.py).

In: the indexer's run, and the service when the file changed since it was last read, join the
CSV to the indexed images with metadata.py's rules and replace the database's rows in one
transaction. Rows written through the API survive (the CSV's own row wins for a path it names).
The CSV is never written: it stays what the user gave.

Out: `export_csv` streams the collection's metadata as a CSV, the columns the CSV had plus those
the API added, formula-looking cells neutralised (csv_cells.py).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from search_by_image.catalog import metadata_store as store
from search_by_image.catalog.csv_cells import neutralised
from search_by_image.catalog.database import connect, transaction
from search_by_image.catalog.metadata import Metadata, load_metadata
from search_by_image.lazy_imports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = LazyModule("pandas")

log = logging.getLogger(__name__)

#: The images a CSV is joined to: (ids, paths) in the same order, read when the import runs.
Images = Callable[[], tuple["Sequence[int] | np.ndarray", list[str]]]
#: Rows per executemany batch when a CSV is imported.
BATCH = 20_000


def csv_stamp(csv_path: Path | None) -> str:
    """What identifies the CSV's content cheaply: inode, mtime and size ("" without a file)."""
    try:
        info = csv_path.stat() if csv_path else None
    except OSError:
        return ""
    return f"{info.st_ino}:{info.st_mtime_ns}:{info.st_size}" if info else ""


def is_current(conn: sqlite3.Connection, csv_path: Path | None, ids: Sequence[int] | np.ndarray) -> bool:
    """The database holds this CSV's rows and one row per id in `ids` (same count, same largest
    id: ids are never reused, so an indexer run that added or removed images changes one)."""
    if store.state(conn, "csv_stamp") != csv_stamp(csv_path):
        return False
    count, largest = conn.execute("SELECT count(*), max(id) FROM metadata_rows").fetchone()
    return count == len(ids) and (largest is None if not len(ids) else largest == int(max(ids)))


def import_csv(
    conn: sqlite3.Connection,
    csv_path: Path | None,
    ids: Sequence[int] | np.ndarray,
    paths: list[str],
    force: bool = False,
) -> Metadata | None:
    """Make the database hold `csv_path`'s rows for the images `ids`/`paths` (index order);
    the join's result (for its problems), or None when it was current already."""
    if not force and is_current(conn, csv_path, ids):
        return None
    return _import(conn, csv_path, lambda: (ids, paths))


def _import(conn: sqlite3.Connection, csv_path: Path | None, images: Images) -> Metadata:
    """The CSV joined to `images()` (ids, paths) and every row replaced, in one transaction
    that checks no write came in meanwhile (else it reads everything again)."""
    for _ in range(3):
        before = store.version(conn)
        ids, paths = images()
        added = _added_rows(conn)
        stamp = csv_stamp(csv_path)
        metadata = load_metadata(csv_path, paths, added)
        with transaction(conn):
            if store.version(conn) != before:
                continue
            _replace(conn, metadata, ids, paths, set(added))
            store.set_state(conn, "csv_stamp", stamp)
            store.set_state(conn, "key", metadata.key or "path")
            store.set_state(conn, "problems", json.dumps(metadata.problems()))
        return metadata
    raise RuntimeError("metadata kept changing while the CSV was imported; try again")


class Indexed(Protocol):
    """A committed index's images (index.store.IndexStore): ids and paths, in row order."""

    @property
    def ids(self) -> np.ndarray: ...
    @property
    def paths(self) -> Sequence[str]: ...


def sync(folder: Path, csv_path: Path | None, indexed: Indexed | None) -> list[str]:
    """The indexer's import, after it committed `indexed` (holding the writer lock, live writes
    folded in): `csv_path` joined to its images unless the database is current (`is_current`).
    The join's problems (unmatched rows, images without one) are logged and returned."""
    if indexed is None:
        return []
    problems = _guarded(folder, lambda conn: import_csv(conn, csv_path, indexed.ids, list(indexed.paths)))
    for problem in problems:
        log.warning("Metadata: %s", problem)
    return problems


def sync_csv(folder: Path, csv_path: Path | None, images: Images) -> list[str]:
    """The service's import: only when `csv_path` changed since it was imported (a hand edit),
    joined to the images the database holds (live writes keep those rows themselves), or when
    nothing was ever imported, to `images()` (a collection saved before it had a database).
    Opening a current database parses nothing. Returns the join's problems."""

    def current(conn: sqlite3.Connection) -> Metadata | None:
        imported = store.state(conn, "csv_stamp")
        if imported == csv_stamp(csv_path):
            return None
        return _import(conn, csv_path, images if imported is None else lambda: _held(conn))

    return _guarded(folder, current)


def _held(conn: sqlite3.Connection) -> tuple[list[int], list[str]]:
    rows = conn.execute("SELECT id, path FROM metadata_rows ORDER BY id").fetchall()
    return [row[0] for row in rows], [row[1] for row in rows]


def _guarded(folder: Path, work: Callable[[sqlite3.Connection], Metadata | None]) -> list[str]:
    """`work` on the folder's database, then the last import's problems; a database that cannot
    be written is reported, never fatal (the service serves without it)."""
    try:
        with contextlib.closing(connect(folder, store.SCHEMA)) as conn:
            work(conn)
            return list(json.loads(store.state(conn, "problems") or "[]"))
    except (sqlite3.Error, OSError, RuntimeError) as exc:
        log.warning("Metadata of %s not imported: %s", folder, exc)
        return []


def _added_rows(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    query = "SELECT path, shown FROM metadata_rows WHERE origin = ? AND shown IS NOT NULL"
    return {path: json.loads(shown) for path, shown in conn.execute(query, (store.ADDED,))}


def _replace(
    conn: sqlite3.Connection,
    metadata: Metadata,
    ids: Sequence[int] | np.ndarray,
    paths: list[str],
    added: set[str],
) -> None:
    """Every row and column replaced by the join's (in the caller's transaction); columns are
    indexed after the rows are in, which is faster than keeping indexes up to date."""
    conn.execute("DROP TABLE IF EXISTS metadata_rows")
    conn.execute("DELETE FROM metadata_columns")
    conn.execute(store.SCHEMA[1])
    kinds = metadata.kinds
    for position, name in enumerate(metadata.columns):
        conn.execute(
            "INSERT INTO metadata_columns (position, name, kind) VALUES (?, ?, ?)",
            (position, name, kinds[name]),
        )
        conn.execute(
            f"ALTER TABLE metadata_rows ADD COLUMN {store.stored(position)} {store.AFFINITY[kinds[name]]}"
        )
    table = metadata.table
    values = (
        [_stored_values(table[name], kinds[name]) for name in metadata.columns] if table is not None else []
    )
    names = ", ".join(["id", "path", "origin", "shown", *(store.stored(p) for p in range(len(values)))])
    marks = ", ".join("?" * (4 + len(values)))
    statement = f"INSERT INTO metadata_rows ({names}) VALUES ({marks})"
    for start in range(0, len(paths), BATCH):
        conn.executemany(
            statement,
            (
                (
                    int(ids[row]),
                    path,
                    store.ADDED if path in added else store.INDEXED,
                    _shown(metadata.rows.get(path)),
                    *(column[row] for column in values),
                )
                for row, path in enumerate(paths[start : start + BATCH], start)
            ),
        )
    for position in range(len(values)):
        column = store.stored(position)
        conn.execute(f"CREATE INDEX IF NOT EXISTS metadata_{column} ON metadata_rows ({column})")
    store.bump(conn)


def _shown(row: dict[str, Any] | None) -> str | None:
    kept = {name: value for name, value in (row or {}).items() if value is not None}
    return json.dumps(kept) if kept else None


def _stored_values(column: pd.Series, kind: str) -> list[Any]:
    """A typed column (metadata.py's table) as the values SQLite stores (None for empty)."""
    if kind == "date":
        column = column.dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    elif kind == "number":
        column = column.astype("Float64")
    elif kind == "bool":
        column = column.astype("Int64")
    else:
        column = column.astype("string")
    return [
        None if value is pd.NA or value is pd.NaT or value != value else value
        for value in column.astype(object)
    ]


def export_csv(conn: sqlite3.Connection) -> Iterator[str]:
    """The collection's metadata as CSV text, a few hundred rows per chunk: the image column
    (the CSV's name for it), then every column; rows of images without metadata have only a path."""
    names = list(store.columns(conn))
    key = store.state(conn, "key") or "path"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([neutralised(key), *(neutralised(name) for name in names)])
    rows = conn.execute("SELECT path, shown FROM metadata_rows ORDER BY id")
    while batch := rows.fetchmany(500):
        for path, shown in batch:
            values = json.loads(shown) if shown else {}
            writer.writerow([path, *(_cell(values.get(name)) for name in names)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


def exported(folder: Path) -> Iterator[str]:
    """`export_csv` of the saved folder `folder`'s database, on a connection of its own (closed
    when the last chunk is read, or when the reader stops early)."""
    conn = connect(folder, store.SCHEMA)
    try:
        conn.execute("BEGIN")  # one read transaction: the header and the rows agree
        yield from export_csv(conn)
    finally:
        conn.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return neutralised(str(value))
