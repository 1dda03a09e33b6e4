"""What a user decided about duplicate groups, kept in the collection's database (database.py)
so it outlives restarts and re-indexes.

Two kinds of decision:
- `keep_all` ("not duplicates"): every pair of its images is remembered as apart, keyed by the
  images' paths relative to the images folder (what `with_faiss.py` keeps an image by, whatever
  ids a rebuild hands out), so the pair never joins a group again until the decision is undone.
- `keep_one`: one image kept, the others trashed (live_writes), each trashed image's old id,
  path, trash file, size and metadata recorded, and the keeper's metadata before copies' values
  were merged into it, so undo can put everything back.

A keep_one is recorded `doing` before its first image is trashed and `done` after the last, each
trashed image in its own transaction as it goes: a failure midway leaves a decision that undo
still reverses. Every write is one SQLite transaction (atomic, WAL, synchronous=FULL).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from search_by_image.catalog.database import connect, transaction
from search_by_image.layout import CATALOG_FILE

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS review_decisions (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('keep_one', 'keep_all')),
        state TEXT NOT NULL CHECK (state IN ('doing', 'done', 'undone')),
        made_at TEXT NOT NULL,
        keeper TEXT,
        images TEXT NOT NULL,
        keeper_metadata TEXT,
        merged TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS review_apart (
        first TEXT NOT NULL,
        second TEXT NOT NULL,
        decision INTEGER NOT NULL REFERENCES review_decisions(id),
        PRIMARY KEY (first, second)
    )""",
    """CREATE TABLE IF NOT EXISTS review_trashed (
        decision INTEGER NOT NULL REFERENCES review_decisions(id),
        path TEXT NOT NULL,
        image_id INTEGER NOT NULL,
        trashed_to TEXT,
        bytes INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        restored_id INTEGER,
        PRIMARY KEY (decision, path)
    )""",
)

Kind = Literal["keep_one", "keep_all"]
State = Literal["doing", "done", "undone"]


@dataclass(frozen=True)
class Trashed:
    path: str
    image_id: int
    #: where live_writes moved the file (None: it was already gone)
    trashed_to: str | None
    bytes: int
    metadata: dict[str, Any]
    #: the id it came back under after an undo
    restored_id: int | None = None


@dataclass(frozen=True)
class Decision:
    id: int
    kind: Kind
    state: State
    made_at: str
    #: keep_one: the kept image's path; keep_all: None
    keeper: str | None
    #: keep_one: the keeper's metadata before the merge, and what the merge added to it
    keeper_metadata: dict[str, Any] | None
    merged: dict[str, Any]
    #: the group's images when it was decided
    paths: list[str]
    trashed: list[Trashed]


def _pair(first: str, second: str) -> tuple[str, str]:
    return (first, second) if first < second else (second, first)


class ReviewDecisions:
    """The decisions of one collection (its saved folder); thread-safe."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        #: counts this process' changes to the pairs kept apart (for caches of groups)
        self.version = 0

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.folder, SCHEMA)
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def apart(self) -> set[tuple[str, str]]:
        """Every pair of paths decided "not duplicates", each as (smaller, larger)."""
        if self._conn is None and not (self.folder / CATALOG_FILE).is_file():
            return set()  # nothing decided yet: a read-only folder stays untouched
        with self._lock:
            return {(a, b) for a, b in self._db().execute("SELECT first, second FROM review_apart")}

    def apart_ids(self, id_of: Callable[[str], int | None]) -> set[tuple[int, int]]:
        """The pairs kept apart as (smaller id, larger id), by `id_of` (a path's id now, None
        for a path not indexed now: its pairs wait until it is again)."""
        found = set()
        for first, second in self.apart():
            a, b = id_of(first), id_of(second)
            if a is not None and b is not None:
                found.add((min(a, b), max(a, b)))
        return found

    def keep_all(self, paths: list[str]) -> int:
        """Remember every pair of `paths` as apart; the decision's id."""
        with self._lock, transaction(self._db()) as db:
            decision = self._insert(db, "keep_all", "done", None, None, paths)
            db.executemany(
                "INSERT OR REPLACE INTO review_apart (first, second, decision) VALUES (?, ?, ?)",
                [(*_pair(a, b), decision) for a, b in itertools.combinations(sorted(set(paths)), 2)],
            )
            self.version += 1
            return decision

    def begin_keep_one(self, keeper: str, keeper_metadata: dict[str, Any], paths: list[str]) -> int:
        """A keep_one about to trash images (state `doing`) of the group of `paths`; its id."""
        with self._lock, transaction(self._db()) as db:
            return self._insert(db, "keep_one", "doing", keeper, keeper_metadata, paths)

    def add_trashed(self, decision: int, trashed: Trashed) -> None:
        with self._lock, transaction(self._db()) as db:
            db.execute(
                "INSERT OR REPLACE INTO review_trashed (decision, path, image_id, trashed_to, bytes, "
                "metadata) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    decision,
                    trashed.path,
                    trashed.image_id,
                    trashed.trashed_to,
                    trashed.bytes,
                    json.dumps(trashed.metadata, default=str),
                ),
            )

    def finish(self, decision: int, merged: dict[str, Any]) -> None:
        """The keep_one is complete; `merged`: the values its copies gave the keeper."""
        with self._lock, transaction(self._db()) as db:
            db.execute(
                "UPDATE review_decisions SET state = 'done', merged = ? WHERE id = ?",
                (json.dumps(merged, default=str), decision),
            )

    def restored(self, decision: int, path: str, image_id: int) -> None:
        with self._lock, transaction(self._db()) as db:
            db.execute(
                "UPDATE review_trashed SET restored_id = ? WHERE decision = ? AND path = ?",
                (image_id, decision, path),
            )

    def undone(self, decision: int) -> None:
        """The decision no longer holds: its pairs are forgotten, it is listed as undone."""
        with self._lock, transaction(self._db()) as db:
            db.execute("DELETE FROM review_apart WHERE decision = ?", (decision,))
            db.execute("UPDATE review_decisions SET state = 'undone' WHERE id = ?", (decision,))
            self.version += 1

    def discard(self, decision: int) -> None:
        """Forget a keep_one that failed before it trashed anything."""
        with self._lock, transaction(self._db()) as db:
            db.execute("DELETE FROM review_trashed WHERE decision = ?", (decision,))
            db.execute("DELETE FROM review_decisions WHERE id = ?", (decision,))

    def get(self, decision: int) -> Decision | None:
        found = self.listed(only=decision)
        return found[0] if found else None

    def listed(self, limit: int = 50, only: int | None = None) -> list[Decision]:
        """The latest decisions first (or the one numbered `only`)."""
        with self._lock:
            db = self._db()
            where, args = ("WHERE id = ?", (only,)) if only is not None else ("", ())
            rows = db.execute(
                "SELECT id, kind, state, made_at, keeper, keeper_metadata, merged, images "
                "FROM review_decisions "
                f"{where} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
            return [self._decision(db, row) for row in rows]

    @staticmethod
    def _insert(
        db: sqlite3.Connection,
        kind: Kind,
        state: State,
        keeper: str | None,
        metadata: dict | None,
        paths: list[str],
    ) -> int:
        cursor = db.execute(
            "INSERT INTO review_decisions (kind, state, made_at, keeper, keeper_metadata, images) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                kind,
                state,
                datetime.now(UTC).isoformat(timespec="seconds"),
                keeper,
                None if metadata is None else json.dumps(metadata, default=str),
                json.dumps(sorted(paths)),
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    @staticmethod
    def _decision(db: sqlite3.Connection, row: tuple) -> Decision:
        number, kind, state, made_at, keeper, keeper_metadata, merged, images = row
        trashed = [
            Trashed(path, image_id, trashed_to, size, json.loads(metadata), restored_id)
            for path, image_id, trashed_to, size, metadata, restored_id in db.execute(
                "SELECT path, image_id, trashed_to, bytes, metadata, restored_id FROM review_trashed "
                "WHERE decision = ? ORDER BY path",
                (number,),
            )
        ]
        return Decision(
            id=number,
            kind=kind,
            state=state,
            made_at=made_at,
            keeper=keeper,
            keeper_metadata=None if keeper_metadata is None else json.loads(keeper_metadata),
            merged=json.loads(merged) if merged else {},
            paths=json.loads(images),
            trashed=trashed,
        )
