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
from pathlib import Path

import numpy as np

from search_by_image.index.choice import exact_top_k
from search_by_image.index.live_delta import Delta
from search_by_image.index.live_log import Change, open_log, rows_after
from search_by_image.index.store import IndexStore
from search_by_image.layout import CATALOG_FILE


def _with(sorted_values: np.ndarray, more: list[int]) -> np.ndarray:
    return np.union1d(sorted_values, np.array(more, np.int64)) if more else sorted_values


class LiveStore:
    """A base IndexStore and the delta up to `seq`: what one snapshot searches. Immutable."""

    def __init__(
        self,
        base: IndexStore,
        delta: Delta | None = None,
        count: int = 0,
        seq: int | None = None,
        hidden: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.base = base
        #: base ids and delta rows deleted up to `seq`, sorted (made by the writer, so readers
        #: never iterate the shared dicts while it appends)
        empty = np.empty(0, np.int64)
        self._base_deleted: np.ndarray
        self._hidden_rows: np.ndarray
        self._base_deleted, self._hidden_rows = hidden or (empty, empty)
        self.manifest = base.manifest
        self.whitening = base.whitening
        self._delta = delta or Delta.empty(base.manifest.embedder.dim, base.index.d)
        self._count = count
        self.seq = base.manifest.folded_seq if seq is None else seq

    def applied(self, changes: Sequence[Change]) -> LiveStore:
        """A new store with `changes` (log rows above `seq`, in order) laid over this one."""
        changes = [c for c in changes if c.seq > self.seq]
        if not changes:
            return self
        delta = self._delta
        if delta.count != self._count or delta.newer_than(self.seq):
            delta = delta.fork(self._count, self.seq)  # an older store: do not touch the tip's rows
        vectors = [c.descriptor for c in changes if c.descriptor is not None]
        searched = self.searchable(np.stack(vectors)) if vectors else None
        added, base_deleted, hidden_rows = 0, list[int](), list[int]()
        for change in changes:
            if change.descriptor is None:
                hid = delta.delete(change, change.image_id in self.base)
                if hid is not None:
                    (hidden_rows if hid[0] == "row" else base_deleted).append(hid[1])
            elif searched is not None:
                delta.append(change, searched[added])
                added += 1
        hidden = (_with(self._base_deleted, base_deleted), _with(self._hidden_rows, hidden_rows))
        return LiveStore(self.base, delta, delta.count, changes[-1].seq, hidden)

    @property
    def version(self) -> str:
        """Changes with every write: the base's generation and the last change applied."""
        return f"{self.manifest.generation}:{self.seq}"

    @property
    def search_device(self) -> str:
        return self.base.search_device

    def place(self, device: str) -> None:
        self.base.place(device)

    def _delta_row(self, image_id: int) -> int | None:
        """The live delta row of an id, if any."""
        row = self._delta.row_of_id.get(image_id)
        return row if row is not None and row < self._count and not self._row_hidden(row) else None

    def _row_hidden(self, row: int) -> bool:
        seq = self._delta.row_deleted_at.get(row)
        return seq is not None and seq <= self.seq

    def _base_has(self, image_id: int) -> bool:
        seq = self._delta.base_deleted_at.get(image_id)
        return image_id in self.base and (seq is None or seq > self.seq)

    def __len__(self) -> int:
        return len(self.base) - len(self._base_deleted) + self._count - len(self._hidden_rows)

    def __contains__(self, image_id: object) -> bool:
        if not isinstance(image_id, int | np.integer):
            return False
        return self._delta_row(int(image_id)) is not None or self._base_has(int(image_id))

    def path_of(self, image_id: int) -> str:
        """The path of a live id (KeyError for one that is not)."""
        if image_id not in self:
            raise KeyError(image_id)
        row = self._delta_row(image_id)
        return self._delta.paths[row] if row is not None else self.base.path_of(image_id)

    def id_of(self, path: str) -> int | None:
        """The live id of `path`, None when it is not indexed."""
        row = self._delta.row_of_path.get(path)
        if row is not None and row < self._count and not self._row_hidden(row):
            return int(self._delta.ids[row])
        base_row = self.base.paths.row_of(path)
        if base_row is not None and self._base_has(int(self.base.ids[base_row])):
            return int(self.base.ids[base_row])
        return None

    def fingerprint_of(self, path: str) -> tuple[int, int]:
        """(size, mtime_ns) of an indexed path's file when it was indexed (KeyError if it is not)."""
        found = self.fingerprint(path)
        if found is None:
            raise KeyError(path)
        return found

    def fingerprint(self, path: str) -> tuple[int, int] | None:
        row = self._delta.row_of_path.get(path)
        if row is not None and row < self._count and not self._row_hidden(row):
            return self._delta.files[row]
        return self.base.fingerprint(path)

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
                out.append(np.asarray(self.base.features[self.base.row_of(image_id)], np.float32))
        return np.stack(out) if out else np.empty((0, self.manifest.embedder.dim), np.float32)

    def searchable(self, vectors: np.ndarray) -> np.ndarray:
        return self.base.searchable(vectors)

    def searchable_vectors(self, ids: Iterable[int]) -> np.ndarray:
        """The descriptors of live ids as the index compares them (whitened where it is)."""
        return self.searchable(self.vectors(ids))

    @functools.cached_property
    def ids(self) -> np.ndarray:
        """Every live id: the base's in row order, then the delta's (O(N): for whole passes)."""
        base_ids = self.base.ids
        if len(self._base_deleted):
            base_ids = base_ids[~np.isin(base_ids, self._base_deleted)]
        return np.concatenate([base_ids, self._delta.ids[self._live_rows]])

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

    @functools.cached_property
    def _live_rows(self) -> np.ndarray:
        """The delta's rows not deleted."""
        return np.setdiff1d(np.arange(self._count), self._hidden_rows, assume_unique=True)

    def _split(self, allowed: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray]:
        """The allowed base ids (deleted ones kept: the selector drops them) and delta rows."""
        if allowed is None:
            return None, self._live_rows
        allowed = np.asarray(allowed, np.int64)
        if not self._count:
            return allowed, np.empty(0, np.int64)
        rows, delta_ids = self._live_rows, self._delta.ids[: self._count]
        return allowed[~np.isin(allowed, delta_ids)], rows[np.isin(delta_ids[rows], allowed)]

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
        rows = self._live_rows
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
    def delta_adds(self) -> int:
        """Images the delta added (live adds since the base)."""
        return self._count

    @property
    def delta_size(self) -> int:
        """Rows of the delta (adds and deletes): what a fold would fold."""
        return self._count + len(self._base_deleted) + len(self._hidden_rows)


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
