"""The searchable store: one consistent set of index, descriptors, paths and ids, in memory.

Built from the saved files (`load`, disk.py) or from descriptors (`create`), and saved
back as one atomic commit (`save`). A store does not change once it is served: an update
(`with_added`, `without`) returns a new store and readers keep the one they hold. `place` puts
a GPU copy beside the index, once, before the store is served.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from search_by_image.devices import one_faiss_thread
from search_by_image.errors import IndexCorrupt
from search_by_image.index import disk
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
        paths: list[str],
        ids: np.ndarray,
        whitening: Whitening | None = None,
    ):
        if not (index.ntotal == len(paths) == len(features) == len(ids) == manifest.count):
            raise IndexCorrupt(
                f"index has {index.ntotal} vectors, features {len(features)} rows, paths "
                f"{len(paths)} lines, ids {len(ids)}, manifest {manifest.count}; rebuild with "
                "`python with_faiss.py --rebuild`"
            )
        searched_dim = whitening.dims if whitening else manifest.embedder.dim
        if features.ndim != 2 or features.shape[1] != manifest.embedder.dim or index.d != searched_dim:
            raise IndexCorrupt("dimension mismatch between the index files; rebuild with --rebuild")
        self.manifest = manifest
        self.index = index
        self.features = features
        self.paths = paths
        self.ids = ids
        self.whitening = whitening
        self.position = {path: row for row, path in enumerate(paths)}
        self.row_of_id = {int(i): row for row, i in enumerate(ids)}
        #: the folder the index file was memory-mapped from, if it was loaded
        self.loaded_from: Path | None = None
        #: a GPU copy for unfiltered searches, when the service placed one (faiss_device)
        self.gpu_index: faiss.Index | None = None
        self.search_device = "cpu"
        if len(self.row_of_id) != len(ids) or (len(ids) and int(ids.max()) >= manifest.next_id):
            raise IndexCorrupt("duplicate or out-of-range ids in ids.npy; rebuild with --rebuild")

    @classmethod
    def create(
        cls,
        spec: EmbedderSpec,
        features: np.ndarray,
        paths: list[str],
        files: dict[str, tuple[int, int]],
        ids: np.ndarray | None = None,
        next_id: int | None = None,
        whitening_dims: int = 0,
        index_type: str | None = None,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ) -> IndexStore:
        """A new store; the index type is chosen by size unless given (see index/choice.py)."""
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
            files=files,
        )
        return cls(manifest, index, features, paths, ids, whitening)

    def __len__(self) -> int:
        return len(self.paths)

    def path_of(self, image_id: int) -> str:
        """The path of an indexed id (KeyError for one that is not)."""
        return self.paths[self.row_of_id[image_id]]

    def searchable(self, vectors: np.ndarray) -> np.ndarray:
        """Descriptors as the index holds them: whitened when it is, float32, contiguous."""
        vectors = self.whitening(vectors) if self.whitening is not None else vectors
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def with_added(
        self,
        features: np.ndarray,
        paths: list[str],
        files: dict[str, tuple[int, int]],
        ids: list[int] | None = None,
    ) -> IndexStore:
        """A new store with these rows appended under fresh ids, or under `ids` (ids this store
        handed out before and no longer holds: a restored image keeps its id); the whitening
        stays as learned."""
        clash = [p for p in paths if p in self.position]
        if clash:
            raise ValueError(f"already indexed: {clash[:3]}")
        if ids is None:
            new_ids = np.arange(self.manifest.next_id, self.manifest.next_id + len(paths), dtype=np.int64)
            next_id = self.manifest.next_id + len(paths)
        else:
            new_ids = np.asarray(ids, np.int64)
            if len(new_ids) != len(paths) or any(int(i) in self.row_of_id for i in new_ids):
                raise ValueError("ids already held, or not one per path")
            next_id = max(self.manifest.next_id, int(new_ids.max(initial=-1)) + 1)
        index = self._writable_index()
        index.add_with_ids(self.searchable(features), new_ids)
        manifest = self._updated_manifest(
            count=len(self) + len(paths),
            next_id=next_id,
            files={**self.manifest.files, **files},
        )
        return IndexStore(
            manifest,
            index,
            np.concatenate([np.asarray(self.features), features]),
            self.paths + paths,
            np.concatenate([self.ids, new_ids]),
            self.whitening,
        )

    def without(self, ids: Iterable[int]) -> IndexStore:
        """A new store without these ids (unknown ids are ignored); ids are never reused."""
        gone = np.fromiter({int(i) for i in ids} & self.row_of_id.keys(), np.int64)
        keep = ~np.isin(self.ids, gone)
        index = self._writable_index()
        index.remove_ids(faiss.IDSelectorBatch(gone))
        paths = [p for p, kept in zip(self.paths, keep) if kept]
        manifest = self._updated_manifest(count=len(paths), files={p: self.manifest.files[p] for p in paths})
        return IndexStore(
            manifest, index, np.asarray(self.features)[keep], paths, self.ids[keep], self.whitening
        )

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
        return self.manifest.model_copy(
            update={
                **changes,
                "generation": new_generation(),
                "created": datetime.now(UTC),
            }
        )

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """(id, score) pairs per query, best first; at most `k`, fewer for a smaller index.

        `allowed` (ids) restricts the search inside FAISS (an ID selector), so k results come
        back whenever k images are allowed. An IVF index may miss allowed images outside the
        probed lists; those queries are answered again exactly over the allowed rows.
        """
        available = len(self) if allowed is None else len(allowed)
        k = min(k, available)
        if k == 0:
            return [[] for _ in queries]
        queries = self.searchable(queries)
        if allowed is None and self.gpu_index is not None:
            scores, ids = self.gpu_index.search(queries, k)
        else:
            selector = None if allowed is None else faiss.IDSelectorBatch(np.asarray(allowed, np.int64))
            params = search_params(self.index, self.manifest.nprobe, selector)
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
        rows = np.array([self.row_of_id[int(i)] for i in allowed], dtype=np.int64)
        vectors = self.searchable(np.asarray(self.features)[rows])
        best = exact_top_k(vectors, queries, k)
        return [
            [(int(self.ids[rows[r]]), float(vectors[r] @ query)) for r in order]
            for order, query in zip(best, queries)
        ]

    @classmethod
    def load(cls, folder: Path) -> IndexStore:
        """Load the committed index in `folder` (or the old set, if a commit is in flight)."""
        files = disk.read(folder)
        store = cls(files.manifest, files.index, files.features, files.paths, files.ids, files.whitening)
        store.loaded_from = files.folder
        return store

    def save(self, folder: Path) -> None:
        """Commit every file atomically as one set (disk.commit); the caller holds
        `writer_lock(folder)` around its whole read-modify-write."""
        files = disk.SavedFiles(
            self.manifest, self.index, self.features, self.paths, self.ids, self.whitening
        )
        disk.commit(folder, files)
