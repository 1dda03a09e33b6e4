"""The searchable store: one consistent set of index, descriptors, paths and ids, in memory.

Built from the saved files (`load`, disk.py) or from descriptors (`create`), and saved
back as one atomic commit (`save`). A store does not change once it is served: an update
(`with_changes`) returns a new store and readers keep the one they hold. `place` puts
a GPU copy beside the index, once, before the store is served.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from search_by_image.devices import one_faiss_thread
from search_by_image.errors import IndexCorrupt
from search_by_image.index import disk, selection
from search_by_image.index.build import build_index
from search_by_image.index.choice import (
    DEFAULT_MEMORY_LIMIT,
    choose_index_type,
    exact_top_k,
    search_params,
    tune_nprobe,
)
from search_by_image.index.disk import Manifest, new_generation
from search_by_image.index.faiss_device import place
from search_by_image.index.path_table import IdTable, PathTable
from search_by_image.index.whitening import Whitening, learn_if_enough
from search_by_image.layout import INDEX_FILE
from search_by_image.model.embedder import EmbedderSpec

#: Stored numbers (images x dimensions) up to which a search runs on the calling thread alone:
#: 8M floats, a scan of a few milliseconds on one core (about 20,000 images of 384-d), where
#: FAISS's OpenMP team saves little and costs a loaded machine tens of milliseconds
#: (devices.one_faiss_thread).
ONE_THREAD_SCAN = 1 << 23


class IndexStore:
    """One consistent snapshot of a saved index. Immutable: updates build a new store."""

    def __init__(
        self,
        manifest: Manifest,
        index: faiss.Index,
        features: np.ndarray,
        paths: Sequence[str],
        ids: np.ndarray,
        fingerprints: np.ndarray,
        whitening: Whitening | None = None,
    ):
        """`fingerprints`: int64 N x 2, each row's file (size, mtime_ns) when it was indexed."""
        paths = PathTable.of(paths)
        sizes = (index.ntotal, len(features), len(paths), len(ids), len(fingerprints), manifest.count)
        if len(set(sizes)) > 1:
            raise IndexCorrupt(
                "index, features, paths, ids, fingerprints and manifest count disagree "
                f"{sizes}; rebuild with `python with_faiss.py --rebuild`"
            )
        searched_dim = whitening.dims if whitening else manifest.embedder.dim
        if features.ndim != 2 or features.shape[1] != manifest.embedder.dim or index.d != searched_dim:
            raise IndexCorrupt("dimension mismatch between the index files; rebuild with --rebuild")
        self.manifest = manifest
        self.index = index
        self.features = features
        self.paths = paths
        self.ids = ids
        self.fingerprints = fingerprints
        self.whitening = whitening
        self._rows = IdTable(ids)
        #: the folder the index file was memory-mapped from, if it was loaded
        self.loaded_from: Path | None = None
        #: a GPU copy for unfiltered searches, when the service placed one (faiss_device)
        self.gpu_index: faiss.Index | None = None
        self.search_device = "cpu"
        if not self._rows.unique or (len(ids) and int(ids.max()) >= manifest.next_id):
            raise IndexCorrupt("duplicate or out-of-range ids in ids.npy; rebuild with --rebuild")

    @classmethod
    def create(
        cls,
        spec: EmbedderSpec,
        features: np.ndarray,
        paths: list[str],
        files: Mapping[str, Sequence[int]],
        ids: np.ndarray | None = None,
        next_id: int | None = None,
        whitening_dims: int = 0,
        index_type: str | None = None,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        folded_seq: int = 0,
    ) -> IndexStore:
        """A new store; the index type is chosen by size unless given (see index/choice.py).
        `folded_seq`: the last live write it holds (live_log.py)."""
        ids = np.arange(len(paths), dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
        if next_id is None:
            next_id = int(ids.max()) + 1 if len(ids) else 0
        whitening = learn_if_enough(features, whitening_dims)
        searched = whitening(features) if whitening else np.asarray(features, np.float32)
        index_type = index_type or choose_index_type(len(paths), searched.shape[1], memory_limit=memory_limit)
        index = build_index(searched, ids, index_type)
        nprobe, recall = tune_nprobe(index, searched, ids)
        manifest = Manifest(
            embedder=spec,
            index_type=index_type,
            nprobe=nprobe,
            recall_at_10=round(recall, 4),
            count=len(paths),
            next_id=next_id,
            generation=new_generation(),
            whitening_requested=whitening_dims,
            whitening_dims=whitening.dims if whitening else 0,
            created=datetime.now(UTC),
            folded_seq=folded_seq,
        )
        return cls(manifest, index, features, paths, ids, disk.fingerprints_of(paths, files), whitening)

    def __len__(self) -> int:
        return len(self.paths)

    def path_of(self, image_id: int) -> str:
        """The path of an indexed id (KeyError for one that is not)."""
        return self.paths[self.row_of(image_id)]

    def row_of(self, image_id: int) -> int:
        """The row of an indexed id (KeyError for one that is not)."""
        row = self._rows.row_of(int(image_id))
        if row is None:
            raise KeyError(image_id)
        return row

    def row_of_path(self, path: str) -> int:
        """The row of an indexed path (KeyError for one that is not)."""
        if (row := self.paths.row_of(path)) is None:
            raise KeyError(path)
        return row

    def files(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of every row, built when asked (O(N): an indexer run)."""
        return {p: (int(f[0]), int(f[1])) for p, f in zip(self.paths, np.asarray(self.fingerprints))}

    # The lookups a served store (live_store.LiveStore) answers too, by id and by path.
    @property
    def version(self) -> str:
        return self.manifest.generation

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, int | np.integer) and self._rows.row_of(int(image_id)) is not None

    def id_of(self, path: str) -> int | None:
        row = self.paths.row_of(path)
        return None if row is None else int(self.ids[row])

    def fingerprint(self, path: str) -> tuple[int, int] | None:
        row = self.paths.row_of(path)
        return None if row is None else (int(self.fingerprints[row, 0]), int(self.fingerprints[row, 1]))

    def vectors(self, ids: Iterable[int]) -> np.ndarray:
        """The raw stored descriptors of these ids, in their order (KeyError for an unknown id)."""
        rows = [self.row_of(int(i)) for i in ids]
        return np.asarray(np.asarray(self.features)[rows], np.float32).reshape(len(rows), -1)

    def searchable(self, vectors: np.ndarray) -> np.ndarray:
        """Descriptors as the index holds them: whitened when it is, float32, contiguous."""
        vectors = self.whitening(vectors) if self.whitening is not None else vectors
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def with_changes(
        self,
        deleted: Iterable[int],
        features: np.ndarray,
        paths: list[str],
        files: Mapping[str, Sequence[int]],
        ids: Iterable[int],
        folded_seq: int | None = None,
    ) -> IndexStore:
        """A new store without the `deleted` ids and with these rows appended under `ids`, in
        one pass (a fold of live writes at a million images copies the features once); the
        whitening stays as learned."""
        ids = np.fromiter((int(i) for i in ids), np.int64)
        gone = np.unique(np.fromiter((int(i) for i in deleted), np.int64))
        gone = gone[self._rows.rows_of(gone) >= 0]
        clash = [p for p in paths if (r := self.paths.row_of(p)) is not None and self.ids[r] not in gone]
        if clash:
            raise ValueError(f"already indexed: {clash[:3]}")
        keep = ~np.isin(self.ids, gone)
        index = self._writable_index()
        if len(gone):
            index.remove_ids(faiss.IDSelectorBatch(gone))
        if len(ids):
            index.add_with_ids(self.searchable(features), ids)
        kept = int(keep.sum())
        rows = np.empty((kept + len(ids), self.manifest.embedder.dim), np.float32)
        np.compress(keep, self.features, axis=0, out=rows[:kept])
        rows[kept:] = features
        fingerprints = np.concatenate(
            [np.asarray(self.fingerprints)[keep], disk.fingerprints_of(paths, files)]
        )
        paths = [p for p, k in zip(self.paths, keep) if k] + paths
        manifest = self._updated_manifest(
            count=len(paths),
            next_id=max(self.manifest.next_id, int(ids.max()) + 1 if len(ids) else 0),
            folded_seq=self.manifest.folded_seq if folded_seq is None else folded_seq,
        )
        all_ids = np.concatenate([self.ids[keep], ids])
        return IndexStore(manifest, index, rows, paths, all_ids, fingerprints, self.whitening)

    def place(self, device: str) -> None:
        """Put a search copy on the GPU the device setting names, when faiss can (faiss_device)."""
        self.gpu_index, self.search_device = place(self.index, device, self.manifest.nprobe)

    def _writable_index(self) -> faiss.Index:
        """An in-memory copy to change. Memory-mapped IVF lists cannot be cloned, so those are
        read again, whole, from the file this store was loaded from (writers hold the writer
        lock and refresh first, so that file is this store's)."""
        try:
            return faiss.clone_index(self.index)
        except RuntimeError:
            if self.loaded_from is None:
                raise
            return faiss.read_index(str(self.loaded_from / INDEX_FILE))

    def _updated_manifest(self, **changes) -> Manifest:
        update = {**changes, "generation": new_generation(), "created": datetime.now(UTC)}
        return self.manifest.model_copy(update=update)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        deleted: np.ndarray | None = None,
        whitened: bool = False,
    ) -> list[list[tuple[int, float]]]:
        """(id, score) pairs per query, best first; at most `k`, fewer for a smaller index.

        `allowed` (ids) restricts the search and `deleted` (ids deleted since these files were
        written) is left out, both inside FAISS (one ID selector, selection.py), so k results come
        back whenever k images are allowed. An IVF index may miss allowed images outside the
        probed lists; those queries are answered again exactly over the allowed rows.
        `whitened`: the queries are already as the index holds them (`searchable`).
        """
        deleted = np.empty(0, np.int64) if deleted is None else deleted
        if allowed is not None and len(deleted):
            allowed = np.asarray(allowed, np.int64)[~np.isin(allowed, deleted)]
        available = len(self) - len(deleted) if allowed is None else len(allowed)
        k = min(k, available)
        if k <= 0:
            return [[] for _ in queries]
        queries = queries if whitened else self.searchable(queries)
        if allowed is None and not len(deleted) and self.gpu_index is not None:
            scores, ids = self.gpu_index.search(queries, k)
        else:
            chosen = selection.selector(allowed, deleted, self.manifest.next_id)
            params = search_params(self.index, selection.filtered_nprobe(self, allowed, k), chosen)
            small = len(self) * self.index.d <= ONE_THREAD_SCAN
            with one_faiss_thread() if small else contextlib.nullcontext():
                scores, ids = self.index.search(queries, k, params=params)
        hits = [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0]
            for row_ids, row_scores in zip(ids, scores)
        ]
        if allowed is not None and self.manifest.nprobe:
            short = [q for q, found in enumerate(hits) if len(found) < k]
            if short:
                for q, found in zip(short, self._exact_among(queries[short], allowed, k)):
                    hits[q] = found
        return hits

    def _exact_among(self, queries: np.ndarray, allowed: np.ndarray, k: int):
        rows = self._rows.rows_of(np.asarray(allowed, np.int64))
        rows = rows[rows >= 0]
        vectors = self.searchable(np.asarray(self.features)[rows])
        best = exact_top_k(vectors, queries, k)
        return [
            [(int(self.ids[rows[r]]), float(vectors[r] @ query)) for r in order]
            for order, query in zip(best, queries)
        ]

    @classmethod
    def load(cls, folder: Path) -> IndexStore:
        """Load the committed index in `folder` (or the old set, if a commit is in flight)."""
        f = disk.read(folder)
        store = cls(f.manifest, f.index, f.features, f.paths, f.ids, f.fingerprints, f.whitening)
        store.loaded_from = f.folder
        return store

    def save(self, folder: Path) -> None:
        """Commit every file atomically as one set (disk.commit); the caller holds
        `writer_lock(folder)` around its whole read-modify-write."""
        files = disk.SavedFiles(
            self.manifest, self.index, self.features, self.paths, self.ids, self.fingerprints, self.whitening
        )
        disk.commit(folder, files)
