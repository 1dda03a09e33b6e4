"""The served store: the saved index (the base, memory-mapped, never changed by a live write) and
the live writes logged since it was written (the delta, live_log.py), searched as one.

The delta is small (a fold writes a new base past a threshold): its added vectors are scanned
exactly, its deleted ids are excluded from the base's search by a FAISS selector
(selection.py), and the two result lists are merged by score. `LiveStore` is immutable: applying
changes returns a new one sharing the base. The delta's rows live in append-only arrays shared by
the successive stores over one base, each seeing its first `count` rows and the deletes up to
its `seq`; so applying an add costs O(1) amortised, never O(base).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search_by_image.index.choice import exact_top_k
from search_by_image.index.live_log import Change, open_log, rows_after
from search_by_image.index.store import IndexStore
from search_by_image.layout import CATALOG_FILE


@dataclass
class _Delta:
    """Append-only rows of the delta over one base (shared; only the writer appends)."""

    raw: np.ndarray
    searched: np.ndarray
    ids: np.ndarray
    paths: list[str] = field(default_factory=list)
    files: list[tuple[int, int]] = field(default_factory=list)
    row_of_id: dict[int, int] = field(default_factory=dict)
    row_of_path: dict[str, int] = field(default_factory=dict)
    #: deleted id -> the seq of its delete
    deleted_at: dict[int, int] = field(default_factory=dict)
    count: int = 0

    @classmethod
    def empty(cls, dim: int, searched_dim: int, capacity: int = 64) -> _Delta:
        return cls(
            np.empty((capacity, dim), np.float32),
            np.empty((capacity, searched_dim), np.float32),
            np.empty(capacity, np.int64),
        )

    def fork(self, count: int, seq: int) -> _Delta:
        """A private copy of the first `count` rows and the deletes up to `seq`."""
        copy = _Delta.empty(self.raw.shape[1], self.searched.shape[1], max(64, 2 * count))
        copy.raw[:count], copy.searched[:count], copy.ids[:count] = (
            self.raw[:count],
            self.searched[:count],
            self.ids[:count],
        )
        copy.paths, copy.files, copy.count = self.paths[:count], self.files[:count], count
        copy.row_of_id = {i: r for i, r in self.row_of_id.items() if r < count}
        copy.row_of_path = {p: r for p, r in self.row_of_path.items() if r < count}
        copy.deleted_at = {i: s for i, s in self.deleted_at.items() if s <= seq}
        return copy

    def append(self, change: Change, searched: np.ndarray) -> None:
        if self.count == len(self.ids):  # grow: readers keep the arrays they hold
            capacity = 2 * len(self.ids)
            self.raw = _grown(self.raw, capacity)
            self.searched = _grown(self.searched, capacity)
            self.ids = _grown(self.ids, capacity)
        row = self.count
        self.raw[row], self.searched[row], self.ids[row] = change.descriptor, searched, change.image_id
        self.paths.append(change.path)
        self.files.append(change.fingerprint or (0, 0))
        self.row_of_id[change.image_id] = row
        self.row_of_path[change.path] = row
        self.count = row + 1


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.empty((capacity, *array.shape[1:]), array.dtype)
    grown[: len(array)] = array
    return grown


class LiveStore:
    """A base IndexStore and the delta up to `seq`: what one snapshot searches. Immutable."""

    def __init__(
        self,
        base: IndexStore,
        delta: _Delta | None = None,
        count: int = 0,
        seq: int | None = None,
        deleted: np.ndarray | None = None,
    ):
        self.base = base
        #: ids deleted up to `seq`, sorted (made by the writer: the shared dicts are not iterated
        #: by readers while it appends)
        self._deleted = np.empty(0, np.int64) if deleted is None else deleted
        self.manifest = base.manifest
        self.whitening = base.whitening
        self._delta = delta or _Delta.empty(base.manifest.embedder.dim, base.index.d)
        self._count = count
        self.seq = base.manifest.folded_seq if seq is None else seq

    def applied(self, changes: Sequence[Change]) -> LiveStore:
        """A new store with `changes` (log rows above `seq`, in order) laid over this one."""
        changes = [c for c in changes if c.seq > self.seq]
        if not changes:
            return self
        delta = self._delta
        if delta.count != self._count or any(s > self.seq for s in delta.deleted_at.values()):
            delta = delta.fork(self._count, self.seq)  # an older store: do not touch the tip's rows
        adds = [c for c in changes if not c.deleted]
        searched = (
            self.searchable(np.stack([c.descriptor for c in adds if c.descriptor is not None]))
            if adds
            else None
        )
        added, deleted = 0, []
        for change in changes:
            if change.deleted:
                delta.deleted_at.setdefault(change.image_id, change.seq)
                deleted.append(change.image_id)
            elif searched is not None:
                delta.append(change, searched[added])
                added += 1
        all_deleted = np.union1d(self._deleted, np.array(deleted, np.int64)) if deleted else self._deleted
        return LiveStore(self.base, delta, delta.count, changes[-1].seq, all_deleted)

    @property
    def version(self) -> str:
        """Changes with every write: the base's generation and the last change applied."""
        return f"{self.manifest.generation}:{self.seq}"

    @property
    def search_device(self) -> str:
        return self.base.search_device

    def place(self, device: str) -> None:
        self.base.place(device)

    @functools.cached_property
    def _base_deleted(self) -> np.ndarray:
        return np.array([i for i in self._deleted if int(i) in self.base.row_of_id], np.int64)

    def _is_deleted(self, image_id: int) -> bool:
        seq = self._delta.deleted_at.get(image_id)
        return seq is not None and seq <= self.seq

    def _delta_row(self, image_id: int) -> int | None:
        row = self._delta.row_of_id.get(image_id)
        return row if row is not None and row < self._count else None

    def __len__(self) -> int:
        return len(self.base) + self._count - len(self._deleted)

    def __contains__(self, image_id: object) -> bool:
        if not isinstance(image_id, int | np.integer) or self._is_deleted(int(image_id)):
            return False
        return self._delta_row(int(image_id)) is not None or int(image_id) in self.base.row_of_id

    def path_of(self, image_id: int) -> str:
        """The path of a live id (KeyError for one that is not)."""
        if image_id not in self:
            raise KeyError(image_id)
        row = self._delta_row(image_id)
        return self._delta.paths[row] if row is not None else self.base.path_of(image_id)

    def id_of(self, path: str) -> int | None:
        """The live id of `path`, None when it is not indexed."""
        row = self._delta.row_of_path.get(path)
        if row is not None and row < self._count:
            image_id = int(self._delta.ids[row])
        elif (base_row := self.base.position.get(path)) is not None:
            image_id = int(self.base.ids[base_row])
        else:
            return None
        return None if self._is_deleted(image_id) else image_id

    def fingerprint_of(self, path: str) -> tuple[int, int]:
        """(size, mtime_ns) of an indexed path's file when it was indexed (KeyError if it is not)."""
        found = self.fingerprint(path)
        if found is None:
            raise KeyError(path)
        return found

    def fingerprint(self, path: str) -> tuple[int, int] | None:
        row = self._delta.row_of_path.get(path)
        if row is not None and row < self._count:
            return self._delta.files[row]
        files = self.manifest.files.get(path)
        return None if files is None else (int(files[0]), int(files[1]))

    def vectors(self, ids: Iterable[int]) -> np.ndarray:
        """The raw stored descriptors of live ids, in their order (KeyError for an unknown id)."""
        out = []
        for image_id in ids:
            image_id = int(image_id)
            if image_id not in self:
                raise KeyError(image_id)
            row = self._delta_row(image_id)
            if row is not None:
                out.append(self._delta.raw[row])
            else:
                out.append(np.asarray(self.base.features[self.base.row_of_id[image_id]], np.float32))
        return np.stack(out) if out else np.empty((0, self.manifest.embedder.dim), np.float32)

    def searchable(self, vectors: np.ndarray) -> np.ndarray:
        return self.base.searchable(vectors)

    @functools.cached_property
    def ids(self) -> np.ndarray:
        """Every live id: the base's in row order, then the delta's (O(N): for whole passes)."""
        base_ids = self.base.ids
        if len(self._base_deleted):
            base_ids = base_ids[~np.isin(base_ids, self._base_deleted)]
        delta_ids = self._delta.ids[: self._count]
        return np.concatenate([base_ids, delta_ids[~np.isin(delta_ids, self._deleted)]])

    @functools.cached_property
    def paths(self) -> list[str]:
        """Every live path, in the order of `ids` (O(N): for whole passes)."""
        return [self.path_of(int(i)) for i in self.ids]

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """(id, score) pairs per query, best first: at most `k`, and `k` whenever `k` live images
        are `allowed` (ids; None: all). Base and delta searched apart, merged by score."""
        queries = self.searchable(np.atleast_2d(queries))
        base_allowed, delta_rows = self._split(allowed)
        base_hits = self.base.search(queries, k, base_allowed, self._base_deleted, whitened=True)
        delta_hits = self._search_delta(queries, k, delta_rows)
        return [sorted(b + d, key=lambda hit: -hit[1])[:k] if d else b for b, d in zip(base_hits, delta_hits)]

    def _split(self, allowed: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray]:
        """The allowed base ids (deleted ones kept: the selector drops them) and delta rows."""
        delta_ids = self._delta.ids[: self._count]
        live = ~np.isin(delta_ids, self._deleted)
        if allowed is None:
            return None, np.flatnonzero(live)
        allowed = np.asarray(allowed, np.int64)
        if not self._count:
            return allowed, np.empty(0, np.int64)
        in_delta = np.isin(allowed, delta_ids)
        return allowed[~in_delta], np.flatnonzero(live & np.isin(delta_ids, allowed))

    def _search_delta(self, queries: np.ndarray, k: int, rows: np.ndarray) -> list[list[tuple[int, float]]]:
        if not len(rows):
            return [[] for _ in queries]
        vectors = self._delta.searched[rows]
        best = exact_top_k(vectors, queries, min(k, len(rows)))
        return [
            [(int(self._delta.ids[rows[r]]), float(vectors[r] @ query)) for r in order]
            for order, query in zip(best, queries)
        ]

    def folded(self) -> IndexStore:
        """A new base holding this store's delta (for a fold or an indexer run): the deleted ids
        gone, the added rows appended under their ids, `folded_seq` at this store's `seq`."""
        rows = np.flatnonzero(~np.isin(self._delta.ids[: self._count], self._deleted))
        paths = [self._delta.paths[r] for r in rows]
        return self.base.with_changes(
            self._base_deleted,
            self._delta.raw[rows],
            paths,
            {p: self._delta.files[r] for p, r in zip(paths, rows)},
            self._delta.ids[rows],
            folded_seq=self.seq,
        )

    @property
    def delta_size(self) -> int:
        """Rows of the delta (adds and deletes): what a fold would fold."""
        return self._count + len(self._deleted)


def load_live(saved_dir: Path, conn: sqlite3.Connection | None = None) -> tuple[LiveStore, list[Change]]:
    """The committed base in `saved_dir` with the logged changes it does not hold; the changes.
    Without `conn`, the log is read through a connection of its own, when there is one."""
    base = IndexStore.load(saved_dir)
    if conn is None:
        if not (saved_dir / CATALOG_FILE).is_file():
            return LiveStore(base), []
        with contextlib.closing(open_log(saved_dir)) as own:
            changes = rows_after(own, base.manifest.folded_seq)
    else:
        changes = rows_after(conn, base.manifest.folded_seq)
    return LiveStore(base).applied(changes), changes
