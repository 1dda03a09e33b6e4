"""The saved index: FAISS index + features + paths + manifest, loaded and saved symmetrically.

Layout of the saved folder (the first three names are the ones users know):
  faiss_index.faiss   FAISS index, inner product over L2-normalised rows (= cosine)
  features.npy        float32 N x D, row i = line i of images_paths.txt
  images_paths.txt    paths relative to the images folder, one per line
  manifest.json       the embedder spec that built it, index type, count, file fingerprints
  whitening.npz       PCA-whitening learned on the collection, when it is large enough; the
                      FAISS index holds whitened vectors, features.npy the raw descriptors

Commit protocol (why a crash never leaves a mixed index): new files are written to temporary
names first; the current files are hard-linked into `.previous/`; the new files are renamed over
the old ones, the manifest last; then `.previous/` is removed. A reader that finds `.previous/`
loads that complete old set instead, and the next writer rolls it back before doing anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel

from search_by_image.embedder import EmbedderSpec
from search_by_image.whitening import Whitening, learn_if_enough

INDEX_FILE = "faiss_index.faiss"
FEATURES_FILE = "features.npy"
PATHS_FILE = "images_paths.txt"
MANIFEST_FILE = "manifest.json"
WHITENING_FILE = "whitening.npz"
#: Rename order: the manifest goes last, so it only ever describes files already in place.
COMMIT_ORDER = (FEATURES_FILE, PATHS_FILE, WHITENING_FILE, INDEX_FILE, MANIFEST_FILE)
PREVIOUS_DIR = ".previous"
FORMAT_VERSION = 1


class IndexMissing(RuntimeError):
    pass


class IndexCorrupt(RuntimeError):
    pass


class Manifest(BaseModel):
    format: int = FORMAT_VERSION
    embedder: EmbedderSpec
    index_type: str
    count: int
    #: whitening dimensions asked for, and those in use (0: off, or too few images to learn)
    whitening_requested: int = 0
    whitening_dims: int = 0
    created: datetime
    #: relative path -> (size, mtime_ns), for incremental updates
    files: dict[str, tuple[int, int]]


def build_index(features: np.ndarray, index_type: str = "Flat") -> faiss.Index:
    index = faiss.index_factory(features.shape[1], index_type, faiss.METRIC_INNER_PRODUCT)
    if len(features):
        index.add(np.ascontiguousarray(features, dtype=np.float32))
    return index


class IndexStore:
    """One consistent snapshot of a saved index. Immutable: updates build a new store."""

    def __init__(
        self,
        manifest: Manifest,
        index: faiss.Index,
        features: np.ndarray,
        paths: list[str],
        whitening: Whitening | None = None,
    ):
        if not (index.ntotal == len(paths) == len(features) == manifest.count):
            raise IndexCorrupt(
                f"index has {index.ntotal} vectors, features {len(features)} rows, paths "
                f"{len(paths)} lines, manifest {manifest.count}; rebuild with "
                "`python with_faiss.py --rebuild`"
            )
        searched_dim = whitening.dims if whitening else manifest.embedder.dim
        if features.ndim != 2 or features.shape[1] != manifest.embedder.dim or index.d != searched_dim:
            raise IndexCorrupt("dimension mismatch between the index files; rebuild with --rebuild")
        self.manifest = manifest
        self.index = index
        self.features = features
        self.paths = paths
        self.whitening = whitening
        self.position = {path: row for row, path in enumerate(paths)}

    @classmethod
    def create(
        cls,
        spec: EmbedderSpec,
        features: np.ndarray,
        paths: list[str],
        files: dict[str, tuple[int, int]],
        index_type: str = "Flat",
        whitening_dims: int = 0,
    ) -> IndexStore:
        whitening = learn_if_enough(features, whitening_dims)
        manifest = Manifest(
            embedder=spec,
            index_type=index_type,
            count=len(paths),
            whitening_requested=whitening_dims,
            whitening_dims=whitening.dims if whitening else 0,
            created=datetime.now(timezone.utc),
            files=files,
        )
        searched = whitening(features) if whitening else features
        return cls(manifest, build_index(searched, index_type), features, paths, whitening)

    def __len__(self) -> int:
        return len(self.paths)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """(row, score) pairs per query, best first; at most `k`, fewer for a smaller index."""
        k = min(k, len(self))
        if k == 0:
            return [[] for _ in queries]
        if self.whitening is not None:
            queries = self.whitening(queries)
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return [
            [(int(row), float(score)) for row, score in zip(r, s) if row >= 0]
            for r, s in zip(rows, scores)
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
            index = faiss.read_index(str(folder / INDEX_FILE))
            features = np.load(folder / FEATURES_FILE, mmap_mode="r")
            paths = (folder / PATHS_FILE).read_text(encoding="utf-8").splitlines()
            whitening = Whitening.load(folder / WHITENING_FILE) if manifest.whitening_dims else None
        except FileNotFoundError:
            raise
        except (ValueError, RuntimeError, OSError) as exc:
            raise IndexCorrupt(f"cannot read the index in {folder}: {exc}") from exc
        return cls(manifest, index, features, paths, whitening)

    def save(self, folder: Path) -> None:
        """Write all four files atomically as one set (see the module docstring)."""
        folder.mkdir(parents=True, exist_ok=True)
        with writer_lock(folder):
            roll_back_interrupted_commit(folder)
            written = [n for n in COMMIT_ORDER if n != WHITENING_FILE or self.whitening is not None]
            staged = {name: folder / f".{name}.tmp" for name in written}
            if self.whitening is not None:
                self.whitening.save(staged[WHITENING_FILE])
            faiss.write_index(self.index, str(staged[INDEX_FILE]))
            with open(staged[FEATURES_FILE], "wb") as out:
                np.save(out, np.ascontiguousarray(self.features, dtype=np.float32))
            staged[PATHS_FILE].write_text("".join(f"{p}\n" for p in self.paths), encoding="utf-8")
            staged[MANIFEST_FILE].write_text(self.manifest.model_dump_json(indent=1))
            for path in staged.values():
                _fsync(path)
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
def writer_lock(folder: Path) -> Iterator[None]:
    """One writer per saved folder at a time (an exclusive flock on `.lock`)."""
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another indexer is writing {folder}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
