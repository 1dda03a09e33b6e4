"""A collection's metadata as requests read it: kinds, the ids a filter selects, the rows of
results and what the page's filter controls need, all from the collection's database
(metadata_store.py), opened (never parsed) at start-up.

Each thread reads through its own connection (WAL: readers never wait for the writer and see
committed writes only). What the filter controls need (kinds, a text column's few values, a
range's ends) comes from the columns' indexes, a few lookups each, and is kept until the next
metadata write.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from search_by_image.catalog import metadata_store as store
from search_by_image.catalog.database import connect
from search_by_image.catalog.filters import Condition, where
from search_by_image.catalog.metadata import MAX_CHOICES, ColumnInfo, Kind


class MetadataView:
    """Read access to the metadata of the collection saved in `folder`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._local = threading.local()
        self._described: tuple[int, list[ColumnInfo]] | None = None

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened, with the tables created, on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.folder, store.SCHEMA)
        return conn

    @property
    def kinds(self) -> dict[str, Kind]:
        return {name: kind for name, (_, kind) in store.columns(self.connection()).items()}

    @property
    def columns(self) -> list[str]:
        return list(store.columns(self.connection()))

    @property
    def key(self) -> str | None:
        """The CSV's name for the column that names the image (None before any import)."""
        return store.state(self.connection(), "key")

    def rows_for(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        return store.rows_for(self.connection(), ids)

    def for_id(self, image_id: int) -> dict[str, Any]:
        return self.rows_for([image_id]).get(int(image_id), {})

    def select(self, conditions: dict[str, Condition], below: int | None = None) -> np.ndarray:
        """The ids (sorted) of the images every condition allows, only those under `below` if
        given; FilterError for a filter this metadata cannot apply (an unknown column, a value
        of the wrong kind)."""
        conn = self.connection()
        clause, params = where(conditions, store.columns(conn))
        if below is not None:
            clause, params = f"{clause} AND id < ?", [*params, int(below)]
        cursor = conn.execute(f"SELECT id FROM metadata_rows WHERE {clause} ORDER BY id", params)
        return np.fromiter((row[0] for row in cursor), dtype=np.int64)

    @property
    def described(self) -> list[ColumnInfo]:
        """What the page needs to draw a filter control per column, kept until a write."""
        conn = self.connection()
        current = store.version(conn)
        kept = self._described
        if kept is None or kept[0] != current:
            kept = self._described = (
                current,
                [_info(conn, n, p, k) for n, (p, k) in store.columns(conn).items()],
            )
        return kept[1]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _info(conn: sqlite3.Connection, name: str, position: int, kind: Kind) -> ColumnInfo:
    column = store.stored(position)
    info = ColumnInfo(name=name, kind=kind)
    if kind == "text":
        values = distinct(conn, column, MAX_CHOICES + 1)
        info.values = values if len(values) <= MAX_CHOICES else None
    elif kind in ("number", "date"):
        low, high = conn.execute(f"SELECT min({column}), max({column}) FROM metadata_rows").fetchone()
        if low is not None:
            info.min, info.max = (low[:10], high[:10]) if kind == "date" else (float(low), float(high))
    return info


def distinct(conn: sqlite3.Connection, column: str, most: int) -> list[str]:
    """Up to `most` distinct values of an indexed column, in order: one index lookup each (a
    skip-scan), never a pass over the table."""
    query = (
        f"WITH RECURSIVE seen(value) AS (SELECT min({column}) FROM metadata_rows "
        f"UNION ALL SELECT (SELECT min({column}) FROM metadata_rows WHERE {column} > seen.value) "
        f"FROM seen WHERE seen.value IS NOT NULL LIMIT ?) SELECT value FROM seen WHERE value IS NOT NULL"
    )
    return [str(value) for (value,) in conn.execute(query, (most + 1,))][:most]
