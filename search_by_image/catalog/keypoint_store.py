"""Each indexed image's local keypoints, computed once (by the indexer's decode, or an API add)
and stored in the collection's `keypoints.sqlite` beside `catalog.sqlite`, so verification reads
them by path instead of decoding a thumbnail and extracting them for every search.

One row per image path, with the file's fingerprint (size, mtime) it was computed from: a row
whose fingerprint is not the indexed file's is stale and reads as missing (the reader then
extracts them from the thumbnail; the next indexer run writes the row again).
Rows of images no longer indexed are harmless and pruned by the indexer. A file of its own, not a
table of catalog.sqlite: at ~20-90 KB an image (tens of GB at 1M images) it would dwarf the
metadata and the live writes' log, whose WAL the service checkpoints on every write. WAL with
`synchronous=NORMAL`: the rows are derived data (a power cut may lose the last ones, which then
read as missing), and the indexer's workers write them side by side.

Positions are stored in a frame the caller states (`StoredKeypoints.frame`: the thumbnail's grey
scaled to local_features.SIDE), as fixed point (1/POSITION_SCALE px, uint16), descriptors as they
are (n x 32 uint8): 36 bytes a keypoint. This module stores arrays; ranking/stored_keypoints.py
makes and reads them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search_by_image.catalog.database import BUSY_TIMEOUT_S, transaction, use_wal
from search_by_image.layout import KEYPOINTS_FILE

#: Fixed-point positions: 1/128 px, so a frame up to 511 px wide fits a uint16.
POSITION_SCALE = 128
#: Rows read per SQL statement (under SQLite's 999 bound variables, two per row).
READ_CHUNK = 400
SCHEMA = """CREATE TABLE IF NOT EXISTS keypoints (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    -- the frame the positions are in (px): the thumbnail's grey at local_features.SIDE
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    -- the thumbnail's keypoints, and those of a larger view of the photo (NULL: none)
    thumb BLOB NOT NULL,
    large BLOB
) WITHOUT ROWID"""

Fingerprint = tuple[int, int]


@dataclass(frozen=True)
class PointSet:
    #: n x 2 float32 positions in the row's frame
    xy: np.ndarray
    #: n x 32 uint8 ORB descriptors
    descriptors: np.ndarray

    def to_bytes(self) -> bytes:
        fixed = np.clip(np.round(self.xy * POSITION_SCALE), 0, 65535).astype("<u2")
        return (
            np.uint32(len(self.xy)).tobytes()
            + fixed.tobytes()
            + np.ascontiguousarray(self.descriptors).tobytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PointSet:
        count = int(np.frombuffer(data, "<u4", 1)[0])
        xy = np.frombuffer(data, "<u2", 2 * count, 4).reshape(count, 2).astype(np.float32) / POSITION_SCALE
        descriptors = np.frombuffer(data, np.uint8, 32 * count, 4 + 4 * count).reshape(count, 32)
        return cls(xy, descriptors)


@dataclass(frozen=True)
class StoredKeypoints:
    #: (width, height) of the frame positions are in
    frame: tuple[int, int]
    thumb: PointSet
    large: PointSet | None = None
    #: a larger view's set is stored (read with `large`, or left to `KeypointStore.read_large`)
    has_large: bool = False

    @property
    def nbytes(self) -> int:
        return len(self.thumb.to_bytes()) + (len(self.large.to_bytes()) if self.large else 0)


class KeypointStore:
    """A collection's `keypoints.sqlite`: opened on first use, one connection per thread (reads
    run on the verification threads side by side). Picklable: it holds its folder only."""

    def __init__(self, saved_dir: Path):
        self.file = Path(saved_dir) / KEYPOINTS_FILE
        self._local = threading.local()

    def __getstate__(self) -> dict:
        return {"file": self.file}

    def __setstate__(self, state: dict) -> None:
        self.file, self._local = state["file"], threading.local()

    def _conn(self, write: bool = False) -> sqlite3.Connection | None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if not write and not self.file.is_file():
                return None
            self.file.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.file, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            use_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(SCHEMA)
            self._local.conn = conn
        return conn

    def create(self) -> KeypointStore:
        """Make the file (WAL, its table) now, before the indexer's worker processes write to it."""
        self._conn(write=True)
        return self

    def put(self, rows: Iterable[tuple[str, Fingerprint, StoredKeypoints]]) -> None:
        """Store (or replace) the keypoints of these (path, fingerprint) images, one transaction."""
        values = [
            (path, size, mtime, *k.frame, k.thumb.to_bytes(), None if k.large is None else k.large.to_bytes())
            for path, (size, mtime), k in rows
        ]
        if not values:
            return
        conn = self._conn(write=True)
        assert conn is not None
        with transaction(conn):
            conn.executemany("INSERT OR REPLACE INTO keypoints VALUES (?, ?, ?, ?, ?, ?, ?)", values)

    def read(
        self, images: Sequence[tuple[str, Fingerprint]], large: bool = True
    ) -> list[StoredKeypoints | None]:
        """The stored keypoints of each (path, fingerprint), None where none is stored for that
        very file (missing, or computed from a file since changed); without the larger view's set
        unless `large` (`has_large` says whether there is one: `read_large`)."""
        found: dict[str, tuple] = {}
        conn = self._conn()
        paths = [path for path, _ in images]
        columns = "path, size, mtime_ns, width, height, thumb, " + ("large" if large else "large IS NOT NULL")
        for start in range(0, len(paths) if conn is not None else 0, READ_CHUNK):
            part = paths[start : start + READ_CHUNK]
            marks = ",".join("?" * len(part))
            query = f"SELECT {columns} FROM keypoints WHERE path IN ({marks})"
            for row in conn.execute(query, part):  # type: ignore[union-attr]
                found[row[0]] = row
        return [_decoded(found.get(path), fingerprint, large) for path, fingerprint in images]

    def read_large(self, path: str, fingerprint: Fingerprint) -> PointSet | None:
        """The larger view's set of one image's stored keypoints (None: none for that file)."""
        conn = self._conn()
        row = None
        if conn is not None:
            query = "SELECT large, size, mtime_ns FROM keypoints WHERE path = ?"
            row = conn.execute(query, (path,)).fetchone()
        if row is None or row[0] is None or (row[1], row[2]) != tuple(fingerprint):
            return None
        return PointSet.from_bytes(row[0])

    def missing(self, images: dict[str, Fingerprint]) -> list[str]:
        """The paths of `images` with no row for their current file."""
        conn = self._conn()
        stored = (
            {}
            if conn is None
            else {p: (s, m) for p, s, m in conn.execute("SELECT path, size, mtime_ns FROM keypoints")}
        )
        return [path for path, fingerprint in images.items() if stored.get(path) != tuple(fingerprint)]

    def prune(self, keep: Iterable[str]) -> int:
        """Remove the rows of every path not in `keep`; how many."""
        conn = self._conn()
        if conn is None:
            return 0
        gone = {p for (p,) in conn.execute("SELECT path FROM keypoints")} - set(keep)
        self.remove(gone)
        return len(gone)

    def remove(self, paths: Iterable[str]) -> None:
        conn = self._conn()
        if conn is not None:
            with transaction(conn):
                conn.executemany("DELETE FROM keypoints WHERE path = ?", [(p,) for p in paths])

    def forget(self, paths: Iterable[str]) -> None:
        """`remove`, a failure (a locked or read-only file) left to the indexer's `prune`: the
        rows of paths no longer indexed are never read."""
        with contextlib.suppress(sqlite3.Error):
            self.remove(paths)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _decoded(row: tuple | None, fingerprint: Fingerprint, large: bool) -> StoredKeypoints | None:
    if row is None or (row[1], row[2]) != tuple(fingerprint):
        return None
    finer = PointSet.from_bytes(row[6]) if large and row[6] is not None else None
    has_large = row[6] is not None if large else bool(row[6])
    return StoredKeypoints((int(row[3]), int(row[4])), PointSet.from_bytes(row[5]), finer, has_large)
