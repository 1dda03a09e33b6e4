"""The saved index: FAISS index + features + paths + manifest, loaded and saved symmetrically.

Layout of the saved folder (the first three names are the ones users know):
  faiss_index.faiss   FAISS index, inner product over L2-normalised rows (= cosine)
  features.npy        float32 N x D, row i = line i of images_paths.txt
  images_paths.txt    paths relative to the images folder, one per line
  ids.npy             int64 N, the stable id of each row: FAISS returns ids, not row numbers,
                      so adding or removing one image never renumbers the others
  manifest.json       the embedder spec that built it, index type, count, next free id,
                      a generation tag that changes with every commit, file fingerprints
  whitening.npz       PCA-whitening learned on the collection, when it is large enough; the
                      FAISS index holds whitened vectors, features.npy the raw descriptors

Commit protocol (why a crash never leaves a mixed index): new files are written to temporary
names first; the current files are hard-linked into `.previous/`; the new files are renamed over
the old ones, the manifest last; then `.previous/` is removed. A reader that finds `.previous/`
loads that complete old set instead, and the next writer rolls it back before doing anything.
Writers hold `writer_lock` around their read-modify-write; a store is immutable once built, so
an update (`with_added`, `without`) returns a new store and readers keep the one they hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel
from threadpoolctl import threadpool_limits

from search_by_image import journal
from search_by_image.embedder import EmbedderSpec
from search_by_image.errors import IndexBusy, IndexCorrupt, IndexMissing
from search_by_image.faiss_device import place
from search_by_image.index_choice import (
    DEFAULT_MEMORY_LIMIT,
    choose_index_type,
    exact_top_k,
    search_params,
    tune_nprobe,
)
from search_by_image.whitening import Whitening, learn_if_enough

INDEX_FILE = "faiss_index.faiss"
FEATURES_FILE = "features.npy"
PATHS_FILE = "images_paths.txt"
MANIFEST_FILE = "manifest.json"
WHITENING_FILE = "whitening.npz"
IDS_FILE = "ids.npy"
#: Rename order: the manifest goes last, so it only ever describes files already in place.
COMMIT_ORDER = (FEATURES_FILE, PATHS_FILE, IDS_FILE, WHITENING_FILE, INDEX_FILE, MANIFEST_FILE)
PREVIOUS_DIR = ".previous"
LOCK_FILE = ".lock"
#: k-means training points per IVF list: faiss warns under 39 and caps at 256; 64 places the
#: centroids well and trained 1M vectors into 4096 lists in a fraction of the full-set time.
TRAIN_POINTS_PER_LIST = 64
#: 2 added ids.npy; a format-1 index (rows numbered 0..N-1) still loads.
FORMAT_VERSION = 2


class Manifest(BaseModel):
    format: int = FORMAT_VERSION
    embedder: EmbedderSpec
    index_type: str
    #: IVF lists visited per query, tuned at build time to reach recall@10 >= 0.95 (0: exact)
    nprobe: int = 0
    #: recall@10 against exact search measured when nprobe was tuned
    recall_at_10: float = 1.0
    count: int
    next_id: int = 0
    #: changes with every commit: how the service notices that someone else rewrote the index
    generation: str = ""
    #: whitening dimensions asked for, and those in use (0: off, or too few images to learn)
    whitening_requested: int = 0
    whitening_dims: int = 0
    created: datetime
    #: relative path -> (size, mtime_ns), for incremental updates
    files: dict[str, tuple[int, int]]


def build_index(vectors: np.ndarray, ids: np.ndarray, index_type: str) -> faiss.Index:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.index_factory(vectors.shape[1], index_type, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(training_sample(vectors, index))
    if len(vectors):
        index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
    return index


def training_sample(vectors: np.ndarray, index: faiss.Index, seed: int = 0) -> np.ndarray:
    """At most TRAIN_POINTS_PER_LIST vectors per IVF list, drawn at random, for k-means."""
    ivf = faiss.try_extract_index_ivf(index)
    limit = TRAIN_POINTS_PER_LIST * ivf.nlist if ivf is not None else len(vectors)
    if len(vectors) <= limit:
        return vectors
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size=limit, replace=False))
    return vectors[rows]


def _new_generation() -> str:
    return uuid.uuid4().hex


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
        """A new store; the index type is chosen by size unless given (see index_choice)."""
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
            generation=_new_generation(),
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
        self, features: np.ndarray, paths: list[str], files: dict[str, tuple[int, int]]
    ) -> IndexStore:
        """A new store with these rows appended under fresh ids; the whitening stays as learned."""
        clash = [p for p in paths if p in self.position]
        if clash:
            raise ValueError(f"already indexed: {clash[:3]}")
        new_ids = np.arange(self.manifest.next_id, self.manifest.next_id + len(paths), dtype=np.int64)
        index = self._writable_index()
        index.add_with_ids(self.searchable(features), new_ids)
        manifest = self._updated_manifest(
            count=len(self) + len(paths),
            next_id=self.manifest.next_id + len(paths),
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
                "generation": _new_generation(),
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
        attempts = 3
        for attempt in range(attempts):
            previous = folder / PREVIOUS_DIR
            source = previous if (previous / MANIFEST_FILE).is_file() else folder
            try:
                return cls._load_from(source)
            except FileNotFoundError:
                # A concurrent commit moved files under us (it removes `.previous/` last).
                if attempt == attempts - 1:
                    raise IndexCorrupt(f"the index in {folder} kept changing while loading") from None
        raise AssertionError("unreachable")

    @classmethod
    def _load_from(cls, folder: Path) -> IndexStore:
        manifest_path = folder / MANIFEST_FILE
        if not manifest_path.is_file():
            raise IndexMissing(f"no index in {folder}: run `python with_faiss.py` to build one")
        try:
            manifest = Manifest.model_validate_json(manifest_path.read_text())
            # memory-mapped: the service starts without reading the index into RAM, and several
            # processes serving the same files share its pages
            index = faiss.read_index(str(folder / INDEX_FILE), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            features = np.load(folder / FEATURES_FILE, mmap_mode="r")
            paths = (folder / PATHS_FILE).read_text(encoding="utf-8").splitlines()
            whitening = Whitening.load(folder / WHITENING_FILE) if manifest.whitening_dims else None
            if manifest.format < 2:
                ids = np.arange(manifest.count, dtype=np.int64)
                manifest = manifest.model_copy(update={"next_id": manifest.count})
            else:
                ids = np.load(folder / IDS_FILE)
        except FileNotFoundError:
            raise
        except (ValueError, RuntimeError, OSError) as exc:
            raise IndexCorrupt(f"cannot read the index in {folder}: {exc}") from exc
        store = cls(manifest, index, features, paths, ids, whitening)
        store.loaded_from = folder
        return store

    def save(self, folder: Path) -> None:
        """Write every file atomically as one set (see the module docstring).

        The caller holds `writer_lock(folder)` around its whole read-modify-write.
        """
        folder.mkdir(parents=True, exist_ok=True)
        written = [n for n in COMMIT_ORDER if n != WHITENING_FILE or self.whitening is not None]
        staged = {name: folder / f".{name}.tmp" for name in written}
        try:
            self._stage(staged)
        except BaseException:  # a full disk: nothing half-written stays behind
            for path in staged.values():
                path.unlink(missing_ok=True)
            raise
        previous = folder / PREVIOUS_DIR
        if (folder / MANIFEST_FILE).is_file():
            previous.mkdir()
            for name in COMMIT_ORDER:
                if (folder / name).exists():
                    os.link(folder / name, previous / name)
            _fsync(previous)
        for name in written:
            os.replace(staged[name], folder / name)
        _fsync(folder)
        shutil.rmtree(previous, ignore_errors=True)
        if self.whitening is None:
            (folder / WHITENING_FILE).unlink(missing_ok=True)

    def _stage(self, staged: dict[str, Path]) -> None:
        """Write every file of the set under its temporary name, synced."""
        if self.whitening is not None:
            self.whitening.save(staged[WHITENING_FILE])
        faiss.write_index(self.index, str(staged[INDEX_FILE]))
        with open(staged[FEATURES_FILE], "wb") as out:
            np.save(out, np.ascontiguousarray(self.features, dtype=np.float32))
        with open(staged[IDS_FILE], "wb") as out:
            np.save(out, np.ascontiguousarray(self.ids, dtype=np.int64))
        staged[PATHS_FILE].write_text("".join(f"{p}\n" for p in self.paths), encoding="utf-8")
        staged[MANIFEST_FILE].write_text(self.manifest.model_dump_json(indent=1))
        for path in staged.values():
            _fsync(path)


def single_threaded_blas() -> None:
    """Make numpy's BLAS single-threaded in a process that answers queries one by one.

    A query's whitening (one row times a 2048 x 384 matrix) left OpenBLAS' second thread spinning
    while faiss' OpenMP team wanted both cores: each search then took 8 ms instead of 0.08 ms
    (measured on 611 and 1M images). Batch work (the indexer's whitening) keeps its threads.
    """
    threadpool_limits(1, user_api="blas")


def roll_back_interrupted_commit(folder: Path) -> None:
    """Put back the complete old set left in `.previous/` by a commit that crashed."""
    previous = folder / PREVIOUS_DIR
    if not previous.is_dir():
        return
    if (previous / MANIFEST_FILE).is_file():
        for name in COMMIT_ORDER:
            if (previous / name).exists():
                os.replace(previous / name, folder / name)
    shutil.rmtree(previous)
    _fsync(folder)


@contextlib.contextmanager
def writer_lock(folder: Path, wait: float = 0.0) -> Iterator[None]:
    """One writer per saved folder at a time (an exclusive flock on `.lock`), across processes.

    Waits up to `wait` seconds, then raises IndexBusy. Recovers from a crash on entry (`recover`),
    so the holder always starts from a complete set and no half-done live write.
    """
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    with open(folder / LOCK_FILE, "w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusy(
                        f"another writer (usually with_faiss.py) is updating {folder}; "
                        "try again when it has finished"
                    ) from None
                time.sleep(0.05)
        try:
            recover(folder)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recover(folder: Path) -> None:
    """After a crash or a failed write: roll back a half-done commit, then undo or finish the
    live write it belonged to (journal). The caller holds the writer lock."""
    roll_back_interrupted_commit(folder)
    journal.settle(folder, committed_generation(folder))


def committed_generation(folder: Path) -> str | None:
    try:
        return Manifest.model_validate_json((folder / MANIFEST_FILE).read_text()).generation
    except (OSError, ValueError):
        return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
