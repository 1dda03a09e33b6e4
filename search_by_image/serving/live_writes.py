"""Adding and deleting images of a served collection while it serves (POST/DELETE .../images).

A write is one SQLite transaction in the collection's write-ahead log (index/live_log.py): an add
logs each new image's id, path, descriptor and fingerprint, a delete a tombstone. Its COMMIT is
the commit point, and the answer (201) comes after it; no index file, features.npy or CSV is
rewritten, so a write costs the same at 10k images as at 1M. The new snapshot lays the logged
rows over the same base (index/live_store.py; an add's keypoints go to the keypoint store before
its COMMIT: a crash leaves a row no image has); other worker processes apply them on their reload
tick; a background fold (serving/folding.py) writes them into a new base now and then.

Writers take the collection's thread lock, then the saved folder's writer lock (held by an
indexer run for its whole run, so ids never clash), and catch up with the log first.

Images added through the API are written (atomically) into the collection's images folder
(`uploads/`, named by content hash, so the same photo twice is one image) before the
transaction: a crash in between leaves an upload no row names, which is never served and which
the next indexer run removes (index/live_files.py). Deleted images are moved to the saved folder's
`trash/` after the transaction, not destroyed; a crash in between is finished at the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from search_by_image.catalog import metadata_store
from search_by_image.catalog.database import transaction
from search_by_image.catalog.keypoint_store import KeypointStore
from search_by_image.catalog.locations import Location, unwritable
from search_by_image.catalog.metadata_writes import check_rows
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.errors import Conflict, Rebuilt, StorageError, UnknownImage
from search_by_image.images import formats
from search_by_image.index import live_log
from search_by_image.index.disk import writer_lock
from search_by_image.index.live_files import move, trashed_name, write_durably
from search_by_image.index.live_store import LiveStore
from search_by_image.layout import UPLOADS_DIR
from search_by_image.serving.snapshot import Snapshot

log = logging.getLogger(__name__)

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


class Adds(list[Added]):
    """The images of one add, in the order sent, and where its time went (the `timing` of the
    answer): embedding the photos, and writing them (files, thumbnails, the log's transaction,
    the new snapshot)."""

    embed_ms: float = 0.0
    write_ms: float = 0.0


@contextlib.contextmanager
def _storage(name: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:  # a full disk, a read-only or locked database
        raise StorageError(f"collection {name!r} cannot be written: {exc}; nothing was changed") from exc
    except OSError as exc:
        denied = isinstance(exc, PermissionError) and exc.filename
        hint = unwritable(Path(exc.filename).parent) if denied else None
        raise StorageError(
            f"collection {name!r} cannot be written: {exc.strerror or exc} "
            f"({exc.filename or 'its folders'}); nothing was changed" + (f". {hint}" if hint else "")
        ) from exc


class Writable(Protocol):
    """What live writes need of a collection: where it lives, its lock, its log, its current
    snapshot, and catching up with what is on disk."""

    location: Location
    lock: threading.RLock

    @property
    def name(self) -> str: ...

    @property
    def thumbnails(self) -> Thumbnails: ...

    @property
    def log(self) -> Any: ...

    def refresh(self) -> bool: ...

    def require(self) -> Snapshot: ...


class LiveWrites:
    """A collection's adds and deletes, each one logged transaction under the collection's lock
    and its saved folder's writer lock."""

    def __init__(self, collection: Writable):
        self.collection = collection

    @property
    def location(self) -> Location:
        return self.collection.location

    @property
    def name(self) -> str:
        return self.collection.name

    def add(self, uploads: list[Upload], snapshot: Snapshot | None = None) -> Adds:
        """Store, embed and index `uploads`; the same content twice is one image (one id).

        They are embedded with `snapshot`'s embedder, the one they were decoded for (default: the
        current snapshot); Rebuilt if the collection was rebuilt with another model meanwhile."""
        started = time.perf_counter()
        snapshot = snapshot or self.collection.require()
        spec = snapshot.store.manifest.embedder
        features = snapshot.embedder.embed_prepared(
            [snapshot.embedder.preprocessing(upload.image) for upload in uploads]
        )
        embedded = time.perf_counter()
        paths = [self._upload_path(upload) for upload in uploads]
        with self._writing():
            snapshot = self.collection.require()
            if snapshot.store.manifest.embedder != spec:
                raise Rebuilt(
                    f"collection {self.name!r} was rebuilt with another model meanwhile; "
                    "send the images again"
                )
            check_rows([upload.metadata for upload in uploads], snapshot.metadata)  # CSV may have changed
            store = snapshot.store
            fresh: dict[str, int] = {}
            for row, path in enumerate(paths):
                if store.id_of(path) is None and path not in fresh:
                    fresh[path] = row
            if fresh:
                self._store_new(store, fresh, features, uploads)
                self.collection.refresh()
            store = self.collection.require().store
        added = Adds(Added(int(store.id_of(p) or 0), p, p in fresh) for p in paths)
        added.embed_ms = (embedded - started) * 1e3
        added.write_ms = (time.perf_counter() - embedded) * 1e3
        return added

    def _store_new(self, store: LiveStore, fresh: dict[str, int], features, uploads: list[Upload]) -> None:
        """Write the new images' files and thumbnails, then log them (`_log_adds`); a failure
        before the commit removes the files again (a crash leaves them to the indexer:
        live_files.remove_orphan_uploads)."""
        created = [file for p in fresh if not (file := self.location.images_dir / p).exists()]
        try:
            with _storage(self.name):
                files = {
                    path: write_durably(self.location.images_dir / path, uploads[row].data)
                    for path, row in fresh.items()
                }
                for path, row in fresh.items():
                    self.collection.thumbnails.write_quietly(path, files[path], uploads[row].image)
                if (verifier := self.collection.require().verifier) is not None:  # before COMMIT
                    verifier.images.put(
                        [(p, files[p], uploads[r].data, uploads[r].image) for p, r in fresh.items()]
                    )
                self._log_adds(store, fresh, features, files, uploads)
        except BaseException:
            for file in created:
                with contextlib.suppress(OSError):  # never written (its folder is a file, say)
                    file.unlink(missing_ok=True)
            raise

    def _log_adds(self, store: LiveStore, fresh: dict[str, int], features, files, uploads) -> None:
        """The add's one transaction: ids taken, rows logged, metadata written (one row per
        image, metadata_store.py); then COMMIT."""
        conn = self.collection.log
        with transaction(conn):
            first = live_log.take_ids(conn, len(fresh), store.manifest.next_id)
            live_log.append_adds(
                conn, first, list(fresh), features[list(fresh.values())], [files[p] for p in fresh]
            )
            metadata_store.create_tables(conn)
            for number, (path, row) in enumerate(fresh.items()):
                metadata_store.put(conn, first + number, path, uploads[row].metadata)

    def delete(self, image_id: int) -> tuple[str, Path | None]:
        """Remove one image. Its file and its metadata (as JSON) go to the trash folder, so a
        delete can be undone by hand. Returns its path and where the file went."""
        with self._writing():
            store = self.collection.require().store
            if image_id not in store:
                raise UnknownImage(f"collection {self.name!r} has no image with id {image_id}")
            path = store.path_of(image_id)
            with _storage(self.name):
                conn = self.collection.log
                with transaction(conn):
                    live_log.append_deletes(conn, [(image_id, path)])
                    metadata_store.create_tables(conn)
                    removed = metadata_store.remove(conn, [image_id])
            self.collection.refresh()
            source = self.location.images_dir / path
            trashed = self.location.trash_dir / trashed_name(image_id, path)
            kept_at = None
            try:  # committed: a failure here is finished at the next start (live_files)
                if removed.get(image_id, (path, {}))[1]:
                    record = trashed.with_name(f"{trashed.name}.json")
                    record.parent.mkdir(parents=True, exist_ok=True)
                    record.write_text(json.dumps({"path": path, "metadata": removed[image_id][1]}, indent=1))
                if source.is_file():
                    move(source, trashed)
                    kept_at = trashed
                fingerprint = store.fingerprint(path)
                if fingerprint is not None:
                    self.collection.thumbnails.remove(path, fingerprint)
                KeypointStore(self.location.saved_dir).forget([path])
            except OSError:
                log.exception("Collection %s: deleted %s; its file stays until a restart", self.name, path)
            return path, kept_at

    def restore(self, upload: Upload, path: str, source: Path, image_id: int | None) -> Added:
        """Put a trashed image back: its file from `source` (the trash) to `path`, its metadata
        row (`upload.metadata`), indexed again under `image_id` when no image holds it now, else
        under a fresh id. Conflict when `path` is taken again (a file there, or indexed)."""
        snapshot = self.collection.require()
        features = snapshot.embedder.embed_prepared([snapshot.embedder.preprocessing(upload.image)])
        target = self.location.images_dir / path
        with self._writing():
            store = self.collection.require().store
            if store.id_of(path) is not None or target.exists():
                raise Conflict(
                    f"collection {self.name!r} has an image at {path!r} again; nothing was restored"
                )
            if not source.is_file():
                raise Conflict(f"the trashed file {source.name!r} is gone; nothing was restored")
            try:
                with _storage(self.name):
                    move(source, target)
                    info = target.stat()
                    fingerprint = (info.st_size, info.st_mtime_ns)
                    conn = self.collection.log
                    with transaction(conn):
                        if image_id is None or image_id in store:
                            image_id = live_log.take_ids(conn, 1, store.manifest.next_id)
                        live_log.append_adds(
                            conn, image_id, [path], features, [(info.st_size, info.st_mtime_ns)]
                        )
                        metadata_store.create_tables(conn)
                        metadata_store.put(conn, image_id, path, upload.metadata)
            except BaseException:  # not committed: the file goes back to the trash
                if target.is_file() and not source.exists():
                    move(target, source)
                raise
            self.collection.refresh()
            self.collection.thumbnails.write_quietly(path, fingerprint, upload.image)
            return Added(image_id, path, True)

    def set_metadata(self, image_id: int, row: dict[str, Any]) -> None:
        """Replace the metadata of an indexed image (merging a trashed copy's values into the
        keeper, and undoing that): one row, one transaction, kept by later CSV imports."""
        with self.collection.lock:
            snapshot = self.collection.require()
            if image_id not in snapshot.store:
                raise UnknownImage(f"collection {self.name!r} has no image with id {image_id}")
            with _storage(self.name), transaction(conn := snapshot.metadata.connection()):
                metadata_store.put(conn, image_id, snapshot.store.path_of(image_id), row)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The thread lock, then the saved folder's writer lock (StorageError if it cannot be
        had), then the snapshot caught up with what is on disk."""
        with self.collection.lock, contextlib.ExitStack() as stack:
            with _storage(self.name):
                stack.enter_context(writer_lock(self.location.saved_dir, wait=WRITE_LOCK_WAIT_S))
            self.collection.refresh()
            yield

    @staticmethod
    def _upload_path(upload: Upload) -> str:
        digest = hashlib.sha256(upload.data).hexdigest()[:24]
        return f"{UPLOADS_DIR}/{digest}{formats.stored_suffix(upload.format)}"
