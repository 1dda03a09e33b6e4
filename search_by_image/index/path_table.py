"""A saved index's image paths, one per row, read without a Python object per path.

`images_paths.txt` is memory-mapped and indexed by its line offsets (8 bytes a row); a path is
decoded when asked for. Path -> row goes through a sorted array of the paths' hashes (16 bytes a
row, built in one pass over the file) and a comparison with the candidate rows, not a dict: at a
million images the list and the dict cost about 150 MB and a second at start-up, this about 16 MB
and a fraction of that. Rows are looked up by id the same way (`IdTable`, sorted ids).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np

#: bytes of the file hashed per step (bounds the transient memory of building the hashes)
_CHUNK = 1 << 22


class PathTable(Sequence[str]):
    """Row -> path and path -> row over the bytes of a paths file (one path per line)."""

    def __init__(self, data: bytes | mmap.mmap):
        self._data = data
        view = np.frombuffer(data, np.uint8) if len(data) else np.empty(0, np.uint8)
        ends = np.flatnonzero(view == 10)
        if len(view) and (not len(ends) or ends[-1] != len(view) - 1):
            ends = np.append(ends, len(view))  # no final newline
        self._starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if len(ends) else ends
        self._ends = ends.astype(np.int64)
        hashes = self._hashes()
        self._order = np.argsort(hashes, kind="stable")
        self._sorted_hashes = hashes[self._order]

    @classmethod
    def of(cls, paths: Sequence[str]) -> PathTable:
        if isinstance(paths, PathTable):
            return paths
        return cls("".join(f"{p}\n" for p in paths).encode("utf-8"))

    @classmethod
    def read(cls, file: Path) -> PathTable:
        """The paths in `file`, memory-mapped (shared page cache, not process memory)."""
        with open(file, "rb") as handle:
            if handle.seek(0, 2) == 0:
                return cls(b"")
            return cls(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))

    def _hashes(self) -> np.ndarray:
        hashes = np.empty(len(self._ends), np.int64)
        row = 0
        while row < len(self._ends):
            # whole lines of about _CHUNK bytes: split once, hash each (no object kept)
            last = int(np.searchsorted(self._ends, self._starts[row] + _CHUNK, side="right"))
            last = max(last, row + 1)
            block = self._data[int(self._starts[row]) : int(self._ends[last - 1])]
            hashes[row:last] = np.fromiter(map(hash, block.split(b"\n")), np.int64, count=last - row)
            row = last
        return hashes

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, row: int) -> str: ...
    @overload
    def __getitem__(self, row: slice) -> list[str]: ...
    def __getitem__(self, row: int | slice) -> str | list[str]:
        if isinstance(row, slice):
            return [self[r] for r in range(*row.indices(len(self)))]
        row = int(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(row)
        return bytes(self._data[int(self._starts[row]) : int(self._ends[row])]).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), 65536):
            yield from self[start : start + 65536]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def row_of(self, path: str) -> int | None:
        """The row holding `path`, None when no row does."""
        encoded = path.encode("utf-8", "surrogateescape")
        key = hash(encoded)
        at = int(np.searchsorted(self._sorted_hashes, key))
        while at < len(self._sorted_hashes) and self._sorted_hashes[at] == key:
            row = int(self._order[at])
            if self._data[int(self._starts[row]) : int(self._ends[row])] == encoded:
                return row
            at += 1
        return None


class IdTable:
    """Id -> row over a row-aligned array of unique ids (sorted once; a copy only if unsorted)."""

    def __init__(self, ids: np.ndarray):
        ids = np.asarray(ids, np.int64)
        in_order = len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1]))
        self._order = None if in_order else np.argsort(ids, kind="stable")
        self._sorted = ids if self._order is None else ids[self._order]
        self.unique = in_order or bool(np.all(self._sorted[1:] > self._sorted[:-1]))

    def row_of(self, image_id: int) -> int | None:
        at = int(np.searchsorted(self._sorted, image_id))
        if at == len(self._sorted) or self._sorted[at] != image_id:
            return None
        return at if self._order is None else int(self._order[at])

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """The rows of these ids, -1 for an id not held."""
        ids = np.asarray(ids, np.int64)
        at = np.minimum(np.searchsorted(self._sorted, ids), max(len(self._sorted) - 1, 0))
        found = self._sorted[at] == ids if len(self._sorted) else np.zeros(len(ids), bool)
        rows = at if self._order is None else self._order[at] if len(self._sorted) else at
        return np.where(found, rows, -1).astype(np.int64)
