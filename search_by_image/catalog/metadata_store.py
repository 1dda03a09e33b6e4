"""A collection's metadata in its SQLite database (catalog/database.py): one row per indexed
image, with each metadata column stored typed and indexed, so a filter is one indexed query and
an add or a delete is one row.

    metadata_rows     id -> path, origin, `shown` (the row as API clients get it, JSON), and
                      one typed column per metadata column (`v<position>`), each indexed
    metadata_columns  position -> the column's name and kind (number, date, bool, text)
    metadata_state    the image column's name, the imported CSV's stamp, a write counter

User-given names never reach SQL text: columns are addressed by their position. Typed values:
numbers REAL, dates as fixed-width ISO text (`YYYY-MM-DDTHH:MM:SS.ffffff`, so text order is time
order), booleans 0/1, text as text. Write functions run inside the caller's transaction
(`database.transaction`), so a live write commits its vectors and its metadata as one.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from search_by_image.catalog.csv_cells import is_number
from search_by_image.catalog.metadata import ISO_DATE, Kind
from search_by_image.errors import MetadataRejected

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS metadata_columns ("
    " position INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS metadata_rows ("
    " id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, origin TEXT NOT NULL, shown TEXT)",
    "CREATE TABLE IF NOT EXISTS metadata_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
#: SQL type (affinity) of each kind's stored column.
AFFINITY: dict[str, str] = {"number": "REAL", "date": "TEXT", "bool": "INTEGER", "text": "TEXT"}
#: `origin` of a row: from the indexer (the CSV), or written through the API (kept by re-imports).
INDEXED, ADDED = "index", "api"
#: Most `?` parameters one statement takes (SQLite's default limit is 32766; kept well under).
CHUNK = 900


def stored(position: int) -> str:
    """The SQL name of the column at `position` (never a user-given name)."""
    return f"v{int(position)}"


def create_tables(conn: sqlite3.Connection) -> None:
    """The metadata tables, where they are missing (inside a writer's own transaction)."""
    for statement in SCHEMA:
        conn.execute(statement)


def columns(conn: sqlite3.Connection) -> dict[str, tuple[int, Kind]]:
    """Column name -> (position, kind), in the order the CSV gave them."""
    return {name: (pos, kind) for pos, name, kind in conn.execute(_COLUMNS)}


_COLUMNS = "SELECT position, name, kind FROM metadata_columns ORDER BY position"


def state(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM metadata_state WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_state(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO metadata_state (key, value) VALUES (?, ?)", (key, value))


def version(conn: sqlite3.Connection) -> int:
    """A counter every metadata write increments (caches of derived data compare it)."""
    return int(state(conn, "version") or 0)


def bump(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO metadata_state (key, value) VALUES ('version', '1') "
        "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
    )


def add_column(conn: sqlite3.Connection, name: str, kind: Kind) -> int:
    """A new typed, indexed column; its position."""
    (position,) = conn.execute("SELECT coalesce(max(position), -1) + 1 FROM metadata_columns").fetchone()
    conn.execute(
        "INSERT INTO metadata_columns (position, name, kind) VALUES (?, ?, ?)", (position, name, kind)
    )
    column = stored(position)
    conn.execute(f"ALTER TABLE metadata_rows ADD COLUMN {column} {AFFINITY[kind]}")
    conn.execute(f"CREATE INDEX IF NOT EXISTS metadata_{column} ON metadata_rows ({column})")
    return position


def kind_of_value(value: Any) -> Kind:
    """The kind a new column gets from its first value, as the CSV reader would type that cell."""
    if isinstance(value, bool) or str(value).strip().lower() in ("true", "false"):
        return "bool"
    if isinstance(value, (int, float)) or is_number(str(value)):
        return "number"
    if ISO_DATE.fullmatch(str(value).strip()):
        return "date"
    return "text"


def typed(value: Any, kind: Kind) -> Any:
    """`value` as stored in a column of `kind` (None for an empty cell); ValueError if it is
    not one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    if kind == "date":
        return date_key(value)
    if kind == "bool":
        if isinstance(value, bool):
            return int(value)
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            raise ValueError(value)
        return int(text == "true")
    return _text(value)


def date_key(value: Any) -> str:
    """A date or date-time as fixed-width ISO text (so text order is time order); ValueError
    for anything else. Time zones are dropped: the CSV's dates carry none."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        moment = datetime.fromisoformat(str(value).strip())
    return moment.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.%f")


def shown_value(value: Any, kind: Kind) -> Any:
    """`value` as API clients get it back for a column of `kind` (numbers as numbers, booleans
    as booleans, dates and text as text), like a value read back from the CSV."""
    if value is None:
        return None
    if kind == "number":
        number = float(value)
        return int(number) if number.is_integer() and not isinstance(value, float) else number
    if kind == "bool":
        return bool(typed(value, "bool"))
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def put(
    conn: sqlite3.Connection,
    image_id: int,
    path: str,
    values: Mapping[str, Any] | None = None,
    origin: str = ADDED,
) -> None:
    """One image's row (replacing any for the same id or path), inside the caller's transaction.
    New columns are created typed by their first value; MetadataRejected for a value of the
    wrong kind for an existing column (check it first with metadata_writes.check_rows)."""
    known = columns(conn)
    shown: dict[str, Any] = {}
    cells: dict[str, Any] = {}
    for name, value in (values or {}).items():
        if value is None:
            continue
        if name not in known:
            kind = kind_of_value(value)
            known[name] = (add_column(conn, name, kind), kind)
        position, kind = known[name]
        try:
            cells[stored(position)] = typed(value, kind)
        except ValueError:
            raise MetadataRejected(name, f"this column holds {kind} values; {value!r} is not one") from None
        shown[name] = shown_value(value, kind)
    names = ", ".join(["id", "path", "origin", "shown", *cells])
    marks = ", ".join("?" * (4 + len(cells)))
    conn.execute(
        f"INSERT OR REPLACE INTO metadata_rows ({names}) VALUES ({marks})",
        (int(image_id), path, origin, json.dumps(shown) if shown else None, *cells.values()),
    )
    bump(conn)


def remove(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, tuple[str, dict[str, Any]]]:
    """Delete these images' rows inside the caller's transaction; returns each one's path and
    metadata (for the trash). Unknown ids are ignored."""
    wanted = [int(i) for i in ids]
    gone = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        marks = ", ".join("?" * len(chunk))
        for image_id, path, shown in conn.execute(
            f"SELECT id, path, shown FROM metadata_rows WHERE id IN ({marks})", chunk
        ):
            gone[image_id] = (path, json.loads(shown) if shown else {})
        conn.execute(f"DELETE FROM metadata_rows WHERE id IN ({marks})", chunk)
    if gone:
        bump(conn)
    return gone


def rows_for(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The metadata of these ids, every column present (None where empty); {} for an image
    without any (or an id not in the collection)."""
    names = list(columns(conn))
    wanted = [int(i) for i in ids]
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        marks = ", ".join("?" * len(chunk))
        for image_id, shown in conn.execute(
            f"SELECT id, shown FROM metadata_rows WHERE id IN ({marks}) AND shown IS NOT NULL", chunk
        ):
            values = json.loads(shown)
            found[image_id] = {name: values.get(name) for name in names}
    return found


def paths_for(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, str]:
    """The path of each of these ids that the collection holds."""
    wanted = [int(i) for i in ids]
    found: dict[int, str] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        marks = ", ".join("?" * len(chunk))
        found.update(conn.execute(f"SELECT id, path FROM metadata_rows WHERE id IN ({marks})", chunk))
    return found


def id_of_path(conn: sqlite3.Connection, path: str) -> int | None:
    row = conn.execute("SELECT id FROM metadata_rows WHERE path = ?", (path,)).fetchone()
    return None if row is None else int(row[0])
