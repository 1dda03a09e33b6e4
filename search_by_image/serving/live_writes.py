"""Adding and deleting images of a served collection while it serves (POST/DELETE .../images).

Writers take the collection's thread lock, then the saved folder's writer lock, so they serialise
with each other and with a `with_faiss.py` run in another process, and always start from what is
on disk. Each write is journaled (journal.py) before it starts, so a crash or a full disk is undone
or finished, and ends with an atomic commit (index/disk.py) and a new snapshot swapped in.

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
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from search_by_image.catalog import metadata_store
from search_by_image.catalog.database import transaction
from search_by_image.catalog.locations import Location, unwritable
from search_by_image.catalog.metadata_writes import check_rows
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.errors import Conflict, Rebuilt, StorageError, UnknownImage
from search_by_image.images import formats
from search_by_image.index import journal
from search_by_image.index.disk import recover, writer_lock
from search_by_image.index.store import IndexStore
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


class Writable(Protocol):
    """What live writes need of a collection: where it lives, its lock, its current snapshot,
    and swapping in the store a write made."""

    location: Location
    lock: threading.RLock

    @property
    def name(self) -> str: ...

    @property
    def thumbnails(self) -> Thumbnails: ...

    def refresh(self) -> bool: ...

    def require(self) -> Snapshot: ...

    def swap(self, store: IndexStore) -> None: ...


class LiveWrites:
    """A collection's adds and deletes, each written, journaled and swapped in under the
    collection's lock and its saved folder's writer lock."""

    def __init__(self, collection: Writable):
        self.collection = collection

    @property
    def location(self) -> Location:
        return self.collection.location

    @property
    def name(self) -> str:
        return self.collection.name

    def add(self, uploads: list[Upload], snapshot: Snapshot | None = None) -> list[Added]:
        """Store, embed and index `uploads`; the same content twice is one image (one id).

        They are embedded with `snapshot`'s embedder, the one they were decoded for (default: the
        current snapshot); Rebuilt if the collection was rebuilt with another model meanwhile."""
        snapshot = snapshot or self.collection.require()
        spec = snapshot.store.manifest.embedder
        features = snapshot.embedder.embed_prepared(
            [snapshot.embedder.preprocessing(upload.image) for upload in uploads]
        )
        paths = [self._upload_path(upload) for upload in uploads]
        with self._writing():
            self.collection.refresh()
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
                if path not in store.position and path not in fresh:
                    fresh[path] = row
            created = [self.location.images_dir / path for path in fresh]
            with _storage(self.name), self._journaled(store, [f for f in created if not f.exists()]):
                files = {path: self._write_image(path, uploads[row].data) for path, row in fresh.items()}
                for path, row in fresh.items():
                    self.collection.thumbnails.write_quietly(path, files[path], uploads[row].image)
                if fresh:
                    store = store.with_added(features[list(fresh.values())], list(fresh), files)
                    store.save(self.location.saved_dir)
                    with transaction(conn := snapshot.metadata.connection()):
                        for path, row in fresh.items():
                            image_id = int(store.ids[store.position[path]])
                            metadata_store.put(conn, image_id, path, uploads[row].metadata)
            self.collection.swap(store)
            return [Added(int(store.ids[store.position[p]]), p, p in fresh) for p in paths]

    def delete(self, image_id: int) -> tuple[str, Path | None]:
        """Remove one image. Its file and its CSV rows (as JSON) go to the trash folder, so a
        delete can be undone by hand. Returns its path and where the file went."""
        with self._writing():
            self.collection.refresh()
            store = self.collection.require().store
            row = store.row_of_id.get(image_id)
            if row is None:
                raise UnknownImage(f"collection {self.name!r} has no image with id {image_id}")
            path = store.paths[row]
            source = self.location.images_dir / path
            trashed = self.location.trash_dir / f"{image_id}-{Path(path).name}"
            record = self.location.trash_dir / f"{image_id}-{Path(path).name}.json"
            moved = [(source, trashed)] if source.is_file() else []
            with _storage(self.name), self._journaled(store, [record], moved):
                metadata = self.collection.require().metadata
                values = metadata.for_id(image_id)
                if values:
                    record.parent.mkdir(parents=True, exist_ok=True)
                    record.write_text(json.dumps({"path": path, "metadata": values}, indent=1))
                if moved:
                    journal.move(source, trashed)
                smaller = store.without([image_id])
                smaller.save(self.location.saved_dir)
                with transaction(conn := metadata.connection()):
                    metadata_store.remove(conn, [image_id])
            kept_at = trashed if moved else None
            self.collection.swap(smaller)
            self.collection.thumbnails.remove(path, store.manifest.files[path])
            return path, kept_at

    def restore(self, upload: Upload, path: str, source: Path, image_id: int | None) -> Added:
        """Put a trashed image back: its file from `source` (the trash) to `path`, its metadata
        row (`upload.metadata`), indexed again under `image_id` when no image holds it now, else
        under a fresh id. Conflict when `path` is taken again (a file there, or indexed)."""
        snapshot = self.collection.require()
        features = snapshot.embedder.embed_prepared([snapshot.embedder.preprocessing(upload.image)])
        target = self.location.images_dir / path
        with self._writing():
            self.collection.refresh()
            store = self.collection.require().store
            if path in store.position or target.exists():
                raise Conflict(
                    f"collection {self.name!r} has an image at {path!r} again; nothing was restored"
                )
            if not source.is_file():
                raise Conflict(f"the trashed file {source.name!r} is gone; nothing was restored")
            ids = [image_id] if image_id is not None and image_id not in store.row_of_id else None
            with _storage(self.name), self._journaled(store, [], [(source, target)]):
                journal.move(source, target)
                info = target.stat()
                if upload.metadata:
                    append_rows(self._csv(), {path: upload.metadata}, store.paths)
                store = store.with_added(features, [path], {path: (info.st_size, info.st_mtime_ns)}, ids)
                store.save(self.location.saved_dir)
            self.collection.swap(store)
            self.collection.thumbnails.write_quietly(path, store.manifest.files[path], upload.image)
            return Added(int(store.ids[store.position[path]]), path, True)

    def set_metadata(self, path: str, row: dict[str, Any]) -> None:
        """Replace the metadata row of the indexed image at `path` (merging a trashed copy's
        values into the keeper, and undoing that)."""
        with self._writing():
            self.collection.refresh()
            store = self.collection.require().store
            if path not in store.position:
                raise UnknownImage(f"collection {self.name!r} has no image at {path!r}")
            with _storage(self.name), self._journaled(store, []):
                append_rows(self._csv(), {path: row}, store.paths)
            self.collection.swap(store)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The thread lock, then the saved folder's writer lock (StorageError if it cannot be had)."""
        with self.collection.lock, contextlib.ExitStack() as stack:
            with _storage(self.name):
                stack.enter_context(writer_lock(self.location.saved_dir, wait=WRITE_LOCK_WAIT_S))
            yield

    @contextlib.contextmanager
    def _journaled(
        self, store: IndexStore, created: list[Path], moved: Sequence[tuple[Path, Path]] = ()
    ) -> Iterator[None]:
        """A write recorded before it starts (journal): undone at once if it fails before the
        index commit (a full disk), by the next writer if the process dies."""
        saved = self.location.saved_dir
        journal.begin(
            saved,
            journal.Plan(
                generation=store.manifest.generation,
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
