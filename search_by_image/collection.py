"""One served collection: the snapshot that searches read, and the writes that replace it.

Readers take `collection.snapshot` once and use only that, so a request sees one index, one
metadata table and one embedder even when a write or a reload swaps a new snapshot in meanwhile
(a swap by reference: nobody ever sees half an index). Writers take the collection's thread
lock; API adds and deletes also take the saved folder's writer lock, so they serialise with each
other and with a `with_faiss.py` run in another process, and always start from what is on disk.

Images added through the API are written into the collection's images folder (`uploads/`, named
by content hash, so the same photo twice is one image), which stays the source of truth: a later
`with_faiss.py` run keeps them. Deleted images are moved to the saved folder's `trash/`, not
destroyed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from search_by_image import formats, journal
from search_by_image.backbones import WeightsUnavailable
from search_by_image.catalog import UPLOADS_DIR, Location, unwritable
from search_by_image.duplicates import Group, Neighbours, find_groups
from search_by_image.embedders import EmbedderPool
from search_by_image.errors import (
    IndexBusy,
    IndexCorrupt,
    IndexMissing,
    NoIndex,
    Rebuilt,
    StorageError,
    UnknownImage,
)
from search_by_image.index_files import MANIFEST_FILE, PREVIOUS_DIR, Manifest, recover, writer_lock
from search_by_image.index_store import IndexStore
from search_by_image.metadata import append_rows, check_rows, load_metadata, remove_rows
from search_by_image.metrics import RELOADS
from search_by_image.snapshot import Snapshot, Stamp
from search_by_image.thumbnails import Thumbnails

log = logging.getLogger(__name__)

#: Duplicate groups kept per collection generation, by threshold (each a pass over the neighbours).
KEPT_THRESHOLDS = 8
#: How long an API write waits for another writer before answering "busy, retry".
WRITE_LOCK_WAIT_S = 5.0


@dataclass(frozen=True)
class Upload:
    data: bytes
    image: Image.Image
    #: its name in formats.FORMATS (JPEG, HEIC, DNG...): the stored file's suffix
    format: str
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class Added:
    id: int
    path: str
    created: bool


@contextlib.contextmanager
def _storage(name: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        denied = isinstance(exc, PermissionError) and exc.filename
        hint = unwritable(Path(exc.filename).parent) if denied else None
        raise StorageError(
            f"collection {name!r} cannot be written: {exc.strerror or exc} "
            f"({exc.filename or 'its folders'}); nothing was changed" + (f". {hint}" if hint else "")
        ) from exc


def _file_stamp(path: Path | None) -> tuple[int, int, int] | None:
    try:
        info = path.stat() if path else None
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size) if info else None


class Collection:
    def __init__(self, location: Location, embedders: EmbedderPool):
        self.location = location
        self.snapshot: Snapshot | None = None
        self.problem: str | None = None
        self._embedders = embedders
        self._lock = threading.RLock()
        self._failed: Stamp | None = None
        self._duplicates_lock = threading.Lock()
        self._neighbours: Neighbours | None = None
        self._groups: dict[float | None, list[Group]] = {}

    @property
    def name(self) -> str:
        return self.location.name

    @property
    def thumbnails(self) -> Thumbnails:
        return Thumbnails(self.location.saved_dir)

    def _stamp(self) -> Stamp:
        return (_file_stamp(self.location.saved_dir / MANIFEST_FILE), _file_stamp(self.location.metadata_csv))

    def require(self) -> Snapshot:
        snapshot = self.snapshot
        if snapshot is None:
            problem = self.problem or "none was built"
            raise NoIndex(f"collection {self.name!r} has no usable index yet: {problem}")
        return snapshot

    def refresh(self) -> bool:
        """Swap in what is on disk if it changed since the current snapshot; True if swapped.

        `.previous/` left by a writer that crashed mid-commit is rolled back first, and a live
        add or delete it was part of undone or finished (journal). One left by a live writer (a
        commit in flight) is waited for, unless nothing is served yet: then the
        complete old set it keeps is loaded. A broken index on disk keeps the last good snapshot
        serving, with the problem reported.
        """
        with self._lock:
            if self._interrupted() and not self._roll_back_crashed_commit():
                if self.snapshot is not None:
                    return False
                self._failed = None
                stamp: Stamp = (None, self._stamp()[1])  # reloaded once the commit is done
            else:
                stamp = self._stamp()
            current = self.snapshot
            if (current and stamp == current.stamp) or stamp == self._failed:
                return False
            try:
                store = self._store_for(stamp, current)
                embedder, batcher = self._embedders.get(store.manifest.embedder)
            except (IndexMissing, IndexCorrupt, WeightsUnavailable) as exc:
                self._failed, self.problem = stamp, str(exc)
                RELOADS.labels(self.name, "failed").inc()
                log.warning("Collection %s: %s", self.name, exc)
                return False
            if store is not (current.store if current else None):
                store.place(self._embedders.device)
            metadata = load_metadata(self.location.metadata_csv, store.paths)
            self.snapshot = Snapshot(self.name, store, metadata, embedder, batcher, stamp)
            self.problem, self._failed = None, None
            if current is None or current.store is not store:
                RELOADS.labels(self.name, "loaded").inc()
                log.info(
                    "Collection %s: serving %d images (%s)", self.name, len(store), store.manifest.index_type
                )
            return True

    def _interrupted(self) -> bool:
        """A commit (`.previous/`) or a live write (journal) was left half done, or is in flight."""
        saved = self.location.saved_dir
        return (saved / PREVIOUS_DIR).exists() or (saved / journal.PENDING_FILE).exists()

    def _roll_back_crashed_commit(self) -> bool:
        """True when what `_interrupted` found was a crashed writer's (the writer lock was free)
        and is rolled back or finished now; False while a live writer holds the lock, or the
        folder cannot be written."""
        try:
            with writer_lock(self.location.saved_dir, wait=0):
                pass  # taking the lock rolls an interrupted commit back
        except (IndexBusy, OSError):
            return False
        log.warning("Collection %s: rolled back a commit interrupted by a crash", self.name)
        return True

    def _store_for(self, stamp: Stamp, current: Snapshot | None) -> IndexStore:
        """The current store when only the CSV changed, else the one on disk."""
        if current and stamp[0] == current.stamp[0]:
            return current.store
        if current and stamp[0] is not None:
            try:
                on_disk = Manifest.model_validate_json(
                    (self.location.saved_dir / MANIFEST_FILE).read_text()
                ).generation
            except (OSError, ValueError):
                on_disk = None
            if on_disk == current.store.manifest.generation:
                return current.store
        return IndexStore.load(self.location.saved_dir)

    def duplicates(self, threshold: float | None) -> tuple[Snapshot, list[Group]]:
        """Duplicate groups of the current snapshot: its neighbour list is computed once per
        generation (one caller computes, the others wait for it), and the groups of the last
        few thresholds are kept until the index changes."""
        snapshot = self.require()
        generation = snapshot.store.manifest.generation
        with self._duplicates_lock:
            if self._neighbours is None or self._neighbours.generation != generation:
                self._neighbours, self._groups = Neighbours.of(snapshot.store), {}
            neighbours = self._neighbours
            if threshold not in self._groups:
                if len(self._groups) >= KEPT_THRESHOLDS:
                    self._groups.pop(next(iter(self._groups)))
                self._groups[threshold] = find_groups(snapshot.store, threshold, neighbours)
            return snapshot, self._groups[threshold]

    def add(self, uploads: list[Upload]) -> list[Added]:
        """Store, embed and index `uploads`; the same content twice is one image (one id)."""
        snapshot = self.require()
        spec = snapshot.store.manifest.embedder
        features = snapshot.embedder.embed_prepared(
            [snapshot.embedder.preprocess(upload.image) for upload in uploads]
        )
        paths = [self._upload_path(upload) for upload in uploads]
        with self._writing():
            self.refresh()
            snapshot = self.require()
            if snapshot.store.manifest.embedder != spec:
                raise Rebuilt(
                    f"collection {self.name!r} was rebuilt with another model meanwhile; "
                    "send the images again"
                )
            check_rows([upload.metadata for upload in uploads], snapshot.metadata)  # CSV may have changed
            store = snapshot.store
            fresh: dict[str, int] = {}
            for row, path in enumerate(paths):
                if path not in store.position and path not in fresh:
                    fresh[path] = row
            created = [self.location.images_dir / path for path in fresh]
            with _storage(self.name), self._journaled(store, [f for f in created if not f.exists()]):
                files = {path: self._write_image(path, uploads[row].data) for path, row in fresh.items()}
                for path, row in fresh.items():
                    self.thumbnails.write_quietly(path, files[path], uploads[row].image)
                rows = {path: uploads[row].metadata for path, row in fresh.items() if uploads[row].metadata}
                if rows:
                    append_rows(self._csv(), rows, store.paths)
                if fresh:
                    store = store.with_added(features[list(fresh.values())], list(fresh), files)
                    store.save(self.location.saved_dir)
            self._swap(store)
            return [Added(int(store.ids[store.position[p]]), p, p in fresh) for p in paths]

    def delete(self, image_id: int) -> tuple[str, Path | None]:
        """Remove one image. Its file and its CSV rows (as JSON) go to the trash folder, so a
        delete can be undone by hand. Returns its path and where the file went."""
        with self._writing():
            self.refresh()
            store = self.require().store
            row = store.row_of_id.get(image_id)
            if row is None:
                raise UnknownImage(f"collection {self.name!r} has no image with id {image_id}")
            path = store.paths[row]
            source = self.location.images_dir / path
            trashed = self.location.trash_dir / f"{image_id}-{Path(path).name}"
            record = self.location.trash_dir / f"{image_id}-{Path(path).name}.json"
            moved = [(source, trashed)] if source.is_file() else []
            with _storage(self.name), self._journaled(store, [record], moved):
                rows = remove_rows(self.location.metadata_csv, path, store.paths)
                if rows:
                    record.parent.mkdir(parents=True, exist_ok=True)
                    record.write_text(json.dumps({"path": path, "metadata": rows}, indent=1))
                if moved:
                    trashed.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(source, trashed)
                smaller = store.without([image_id])
                smaller.save(self.location.saved_dir)
            trashed = trashed if moved else None
            self._swap(smaller)
            self.thumbnails.remove(path, tuple(store.manifest.files[path]))
            return path, trashed

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The thread lock, then the saved folder's writer lock (StorageError if it cannot be had)."""
        with self._lock, contextlib.ExitStack() as stack:
            with _storage(self.name):
                stack.enter_context(writer_lock(self.location.saved_dir, wait=WRITE_LOCK_WAIT_S))
            yield

    @contextlib.contextmanager
    def _journaled(
        self, store: IndexStore, created: list[Path], moved: list[tuple[Path, Path]] = ()
    ) -> Iterator[None]:
        """A write recorded before it starts (journal): undone at once if it fails before the
        index commit (a full disk), by the next writer if the process dies."""
        saved = self.location.saved_dir
        journal.begin(
            saved,
            journal.Plan(
                generation=store.manifest.generation,
                csv=self.location.metadata_csv,
                created=created,
                moved=list(moved),
            ),
        )
        try:
            yield
        except BaseException:
            try:
                recover(saved)
            except OSError:  # still unwritable: the next writer (or restart) finishes the job
                log.exception("Collection %s: could not undo a failed write yet", self.name)
            raise
        journal.end(saved)

    def _csv(self) -> Path:
        if self.location.metadata_csv is None:
            raise ValueError(f"collection {self.name!r} has no metadata CSV to add rows to")
        return self.location.metadata_csv

    def _swap(self, store: IndexStore) -> None:
        snapshot = self.require()
        store.place(self._embedders.device)
        metadata = load_metadata(self.location.metadata_csv, store.paths)
        self.snapshot = Snapshot(
            self.name, store, metadata, snapshot.embedder, snapshot.batcher, self._stamp()
        )

    @staticmethod
    def _upload_path(upload: Upload) -> str:
        digest = hashlib.sha256(upload.data).hexdigest()[:24]
        return f"{UPLOADS_DIR}/{digest}{formats.stored_suffix(upload.format)}"

    def _write_image(self, path: str, data: bytes) -> tuple[int, int]:
        """Write atomically (unless the same content is already there); its fingerprint."""
        target = self.location.images_dir / path
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".{target.name}.tmp")
            staged.write_bytes(data)
            os.replace(staged, target)
        info = target.stat()
        return info.st_size, info.st_mtime_ns
