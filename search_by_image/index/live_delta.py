"""The delta of a served collection: the rows of the live-write log (live_log.py) laid over one
base, in append-only arrays and dicts that the successive stores over that base share
(live_store.py). Only the writer (under the collection's lock) appends; each store sees the
first `count` rows and the deletes up to its `seq`, so applying a write never copies the delta.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from search_by_image.index.live_log import Change


@dataclass
class Delta:
    """Append-only rows of the delta over one base (shared; only the writer appends).

    A delete hides the row holding its id at that point: the delta's row when there is a live
    one, else the base's. So an id deleted and then added again (a restored image) is hidden in
    the base and live in the delta."""

    raw: np.ndarray
    searched: np.ndarray
    ids: np.ndarray
    paths: list[str] = field(default_factory=list)
    files: list[tuple[int, int]] = field(default_factory=list)
    #: id or path -> its latest row
    row_of_id: dict[int, int] = field(default_factory=dict)
    row_of_path: dict[str, int] = field(default_factory=dict)
    #: base id -> the seq of the delete that hid its base row
    base_deleted_at: dict[int, int] = field(default_factory=dict)
    #: delta row -> the seq of the delete that hid it
    row_deleted_at: dict[int, int] = field(default_factory=dict)
    count: int = 0

    @classmethod
    def empty(cls, dim: int, searched_dim: int, capacity: int = 64) -> Delta:
        return cls(
            np.empty((capacity, dim), np.float32),
            np.empty((capacity, searched_dim), np.float32),
            np.empty(capacity, np.int64),
        )

    def fork(self, count: int, seq: int) -> Delta:
        """A private copy of the first `count` rows and the deletes up to `seq`."""
        copy = Delta.empty(self.raw.shape[1], self.searched.shape[1], max(64, 2 * count))
        copy.raw[:count], copy.searched[:count], copy.ids[:count] = (
            self.raw[:count],
            self.searched[:count],
            self.ids[:count],
        )
        copy.paths, copy.files, copy.count = self.paths[:count], self.files[:count], count
        copy.row_of_id = {int(i): r for r, i in enumerate(self.ids[:count])}
        copy.row_of_path = {p: r for r, p in enumerate(copy.paths)}
        copy.base_deleted_at = {i: s for i, s in self.base_deleted_at.items() if s <= seq}
        copy.row_deleted_at = {r: s for r, s in self.row_deleted_at.items() if s <= seq}
        return copy

    def newer_than(self, seq: int) -> bool:
        """Whether a delete after `seq` was applied (then a store at `seq` must fork)."""
        return any(s > seq for s in self.base_deleted_at.values()) or any(
            s > seq for s in self.row_deleted_at.values()
        )

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

    def delete(self, change: Change, in_base: bool) -> tuple[str, int] | None:
        """Hide the row holding the id (module docstring): ("row", row) or ("base", id)."""
        row = self.row_of_id.get(change.image_id)
        if row is not None and row not in self.row_deleted_at:
            self.row_deleted_at[row] = change.seq
            return "row", row
        if in_base and change.image_id not in self.base_deleted_at:
            self.base_deleted_at[change.image_id] = change.seq
            return "base", change.image_id
        return None


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.empty((capacity, *array.shape[1:]), array.dtype)
    grown[: len(array)] = array
    return grown
