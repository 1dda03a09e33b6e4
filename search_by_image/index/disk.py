"""The saved index's files: their layout, the manifest, reading them, and their atomic commit.

Layout of the saved folder (the first three names are the ones users know):
  faiss_index.faiss   FAISS index, inner product over L2-normalised rows (= cosine)
  features.npy        float32 N x D, row i = line i of images_paths.txt
  images_paths.txt    paths relative to the images folder, one per line
  ids.npy             int64 N, the stable id of each row: FAISS returns ids, not row numbers,
                      so adding or removing one image never renumbers the others
  fingerprints.npy    int64 N x 2, row i = (size, mtime_ns) of the file of row i when it was
                      indexed (memory-mapped: what the indexer compares to skip unchanged files)
  manifest.json       the embedder spec that built it, index type, count, next free id,
                      a generation tag that changes with every commit, the last live write
                      folded in (`folded_seq`); before format 3 it held the fingerprints as a
                      path -> (size, mtime_ns) dict, still read (the next commit writes format 3)
  whitening.npz       PCA-whitening learned on the collection, when it is large enough; the
                      FAISS index holds whitened vectors, features.npy the raw descriptors

Commit protocol (why a crash never leaves a mixed index): new files are written to temporary
names first; the current files are hard-linked into `.previous/`; the new files are renamed over
the old ones, the manifest last; then `.previous/` is removed. A reader that finds `.previous/`
loads that complete old set instead, and the next writer rolls it back before doing anything.
Writers hold `writer_lock` around their read-modify-write. The searchable store built from these
files is index/store.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel

from search_by_image.errors import IndexBusy, IndexCorrupt, IndexMissing
from search_by_image.index.path_table import PathTable
from search_by_image.index.whitening import Whitening
from search_by_image.layout import (
    FEATURES_FILE,
    FINGERPRINTS_FILE,
    IDS_FILE,
    INDEX_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    PATHS_FILE,
    PREVIOUS_DIR,
    WHITENING_FILE,
)
from search_by_image.model.embedder import EmbedderSpec

#: Rename order: the manifest goes last, so it only ever describes files already in place.
COMMIT_ORDER = (
    FEATURES_FILE,
    PATHS_FILE,
    IDS_FILE,
    FINGERPRINTS_FILE,
    WHITENING_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
)
#: 2 added ids.npy, 3 fingerprints.npy; formats 1 (rows numbered 0..N-1) and 2 (fingerprints in
#: the manifest) still load.
FORMAT_VERSION = 3


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
    #: formats 1-2 only: relative path -> (size, mtime_ns) (format 3: fingerprints.npy)
    files: dict[str, tuple[int, int]] = {}
    #: the highest live-write `seq` these files hold (live_log.py): later rows are the delta
    folded_seq: int = 0


def new_generation() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class SavedFiles:
    """One set of the saved files, in memory (features memory-mapped when read)."""

    manifest: Manifest
    index: faiss.Index
    features: np.ndarray
    paths: Sequence[str]
    ids: np.ndarray
    #: int64 N x 2, (size, mtime_ns) per row
    fingerprints: np.ndarray
    whitening: Whitening | None
    #: the folder they were read from (`.previous/` while a commit is in flight), or None
    folder: Path | None = None


def read(folder: Path) -> SavedFiles:
    """The committed set in `folder` (or the old set, if a commit is in flight)."""
    attempts = 3
    for attempt in range(attempts):
        previous = folder / PREVIOUS_DIR
        source = previous if (previous / MANIFEST_FILE).is_file() else folder
        try:
            return _read_from(source)
        except FileNotFoundError:
            # A concurrent commit moved files under us (it removes `.previous/` last).
            if attempt == attempts - 1:
                raise IndexCorrupt(f"the index in {folder} kept changing while loading") from None
    raise AssertionError("unreachable")


def _read_from(folder: Path) -> SavedFiles:
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise IndexMissing(f"no index in {folder}: run `python with_faiss.py` to build one")
    try:
        manifest = Manifest.model_validate_json(manifest_path.read_text())
        # memory-mapped: the service starts without reading the index into RAM, and several
        # processes serving the same files share its pages
        index = faiss.read_index(str(folder / INDEX_FILE), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        features = np.load(folder / FEATURES_FILE, mmap_mode="r")
        paths = PathTable.read(folder / PATHS_FILE)
        whitening = Whitening.load(folder / WHITENING_FILE) if manifest.whitening_dims else None
        if manifest.format < 2:
            ids = np.arange(manifest.count, dtype=np.int64)
            manifest = manifest.model_copy(update={"next_id": manifest.count})
        else:
            ids = np.load(folder / IDS_FILE)
        if manifest.format < 3:
            fingerprints = fingerprints_of(paths, manifest.files)
            manifest = manifest.model_copy(update={"files": {}})
        else:
            fingerprints = np.load(folder / FINGERPRINTS_FILE, mmap_mode="r")
    except FileNotFoundError:
        raise
    except (ValueError, RuntimeError, OSError) as exc:
        raise IndexCorrupt(f"cannot read the index in {folder}: {exc}") from exc
    return SavedFiles(manifest, index, features, paths, ids, fingerprints, whitening, folder)


def fingerprints_of(paths: Sequence[str], files: Mapping[str, Sequence[int]]) -> np.ndarray:
    """The row-aligned fingerprint array of a path -> (size, mtime_ns) mapping ((0, 0) if absent)."""
    out = np.zeros((len(paths), 2), np.int64)
    for row, path in enumerate(paths):
        found = files.get(path)
        if found is not None:
            out[row] = found[0], found[1]
    return out


def commit(
    folder: Path,
    files: SavedFiles,
    locked: Callable[[], contextlib.AbstractContextManager] | None = None,
    staged_prefix: str = ".",
) -> None:
    """Write every file atomically as one set (see the module docstring).

    The caller holds `writer_lock(folder)` around its whole read-modify-write, or passes
    `locked`: then the files are written first (under `staged_prefix` names of its own) and only
    the renames happen inside `locked()`, so other writers wait milliseconds, not the minute a
    million images take to write; `locked()` raises when the set is no longer wanted.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = [n for n in COMMIT_ORDER if n != WHITENING_FILE or files.whitening is not None]
    staged = {name: folder / f"{staged_prefix}{name}.tmp" for name in written}
    try:
        _stage(files, staged)
        with locked() if locked else contextlib.nullcontext():
            _swap_in(folder, files, staged, written)
    except BaseException:  # a full disk: nothing half-written stays behind
        for path in staged.values():
            path.unlink(missing_ok=True)
        raise


def _swap_in(folder: Path, files: SavedFiles, staged: dict[str, Path], written: list[str]) -> None:
    """Rename the staged set over the current one (`.previous/` kept until it is all in)."""
    previous = folder / PREVIOUS_DIR
    if (folder / MANIFEST_FILE).is_file():
        previous.mkdir()
        for name in COMMIT_ORDER:
            if (folder / name).exists():
                os.link(folder / name, previous / name)
        fsync(previous)
    for name in written:
        os.replace(staged[name], folder / name)
    fsync(folder)
    shutil.rmtree(previous, ignore_errors=True)
    if files.whitening is None:
        (folder / WHITENING_FILE).unlink(missing_ok=True)


def _stage(files: SavedFiles, staged: dict[str, Path]) -> None:
    """Write every file of the set under its temporary name, synced."""
    if files.whitening is not None:
        files.whitening.save(staged[WHITENING_FILE])
    faiss.write_index(files.index, str(staged[INDEX_FILE]))
    with open(staged[FEATURES_FILE], "wb") as out:
        np.save(out, np.ascontiguousarray(files.features, dtype=np.float32))
    with open(staged[IDS_FILE], "wb") as out:
        np.save(out, np.ascontiguousarray(files.ids, dtype=np.int64))
    with open(staged[FINGERPRINTS_FILE], "wb") as out:
        np.save(out, np.ascontiguousarray(files.fingerprints, dtype=np.int64).reshape(-1, 2))
    staged[PATHS_FILE].write_text("".join(f"{p}\n" for p in files.paths), encoding="utf-8")
    manifest = files.manifest.model_copy(update={"format": FORMAT_VERSION})
    staged[MANIFEST_FILE].write_text(manifest.model_dump_json(indent=1, exclude={"files"}))
    for path in staged.values():
        fsync(path)


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
    fsync(folder)


@contextlib.contextmanager
def writer_lock(folder: Path, wait: float = 0.0, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """One writer per saved folder at a time (an exclusive flock on `.lock`), across processes.

    Waits up to `wait` seconds (calling `on_wait` once, when it starts waiting), then raises
    IndexBusy. Recovers from a crash on entry (`recover`), so the holder always starts from a
    complete set and no half-done live write.
    """
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    with open(folder / LOCK_FILE, "w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait is not None and wait > 0:
                    on_wait()
                    on_wait = None
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
    """After a crash or a failed write: roll back a half-done commit. The caller holds the
    writer lock. Cheap when there is nothing to do: every live write takes this lock."""
    roll_back_interrupted_commit(folder)


def committed_generation(folder: Path) -> str | None:
    try:
        return Manifest.model_validate_json((folder / MANIFEST_FILE).read_text()).generation
    except (OSError, ValueError):
        return None


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
