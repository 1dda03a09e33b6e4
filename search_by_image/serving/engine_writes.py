"""Writes to a collection stored in a vector engine besides adds and deletes: a new image's id
(named by its content, engine_collection.py), its columns' kinds, and what a duplicates review
writes: a trashed image put back (undo), an image's metadata replaced (a keeper given its copies'
values). As serving/live_writes.py's, with the engine holding the row: each is one engine write,
acknowledged once the engine has it in its log."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from search_by_image.catalog.locations import Location
from search_by_image.catalog.metadata_store import kind_of_value
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.errors import Conflict, UnknownImage
from search_by_image.index.milvus_store import MilvusStorage
from search_by_image.serving.engine_snapshot import EngineSnapshot
from search_by_image.serving.live_writes import Added, Upload

#: a file in the shared saved folder rewritten around every write to the engine: whether the
#: engine may have changed since a listing, without listing it (engine_duplicates.py)
WRITES_MARK = ".engine_writes"


def writes_mark(location: Location) -> tuple[int, int] | None:
    """The mark's identity now (None: never written)."""
    try:
        info = (location.saved_dir / WRITES_MARK).stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def mark_writes(saved_dir: Path) -> None:
    """The mark rewritten (a new inode): the engine may have changed."""
    staged = saved_dir / f"{WRITES_MARK}.{os.getpid()}.{threading.get_ident()}"
    with contextlib.suppress(OSError):  # a hint only: a read-only folder lists every time
        staged.write_text(uuid.uuid4().hex)
        os.replace(staged, saved_dir / WRITES_MARK)


def content_id(data: bytes) -> tuple[int, str]:
    """An image's first-choice id (53 bits of its SHA-256: exact as a JSON number in a browser)
    and the hex digest its upload is named by."""
    digest = hashlib.sha256(data).hexdigest()
    return int(digest[:14], 16) >> 3, digest[:24]


class EngineWrites:
    """Ids of new images, their columns' kinds, `restore` and `set_metadata`, of one
    engine-stored collection."""

    def __init__(self, location: Location, storage: MilvusStorage, require: Callable[[], EngineSnapshot]):
        self.location = location
        self.storage = storage
        self.require = require

    def free_id(self, image_id: int, path: str, pending: dict[int, str]) -> tuple[int, bool]:
        """The id of the image at `path`: `image_id` unless another image holds it (then the next
        free one); and whether the image is new."""
        while True:
            held = pending.get(image_id) or self.storage.rows([image_id], ["path"]).get(image_id, {}).get(
                "path"
            )
            if held is None:
                return image_id, True
            if held == path:
                return image_id, False
            image_id = (image_id + 1) % (1 << 53)

    def learn_kinds(self, rows: list[dict]) -> None:
        for row in rows:
            for column, value in row.items():
                self.storage.kinds.setdefault(column, kind_of_value(value))

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around one write to the engine: the mark rewritten before (a listing taken meanwhile
        is not trusted after) and after (one taken before the write is not either)."""
        self._mark()
        try:
            yield
        finally:
            self._mark()

    def _mark(self) -> None:
        mark_writes(self.location.saved_dir)

    def set_metadata(self, image_id: int, row: dict[str, Any]) -> None:
        """The image's metadata replaced (its vector and path kept): one upsert."""
        storage = self.storage
        stored = storage.rows([image_id], ["vector", "path"]).get(image_id)
        if stored is None:
            raise UnknownImage(f"collection {self.location.name!r} has no image with id {image_id}")
        clean = {column: value for column, value in row.items() if value is not None}
        self.learn_kinds([clean])
        vector = np.asarray([stored["vector"]], np.float32)
        with self.writing():
            storage.add([image_id], vector, [stored["path"]], [clean], replace=True)

    def restore(self, upload: Upload, path: str, source: Path, image_id: int | None) -> Added:
        """A trashed image's file back at `path`, searchable again under `image_id` when no
        image holds it, else the next free id. Conflict when `path` is taken again."""
        snapshot = self.require()
        target = self.location.images_dir / path
        if target.exists() or snapshot.store.id_of(path) is not None:
            raise Conflict(
                f"collection {self.location.name!r} has an image at {path!r} again; nothing was restored"
            )
        if not source.is_file():
            raise Conflict(f"the trashed file {source.name!r} is gone; nothing was restored")
        embedder = snapshot.embedder
        features = embedder.embed_prepared([embedder.preprocessing(upload.image)])
        wanted = content_id(upload.data)[0] if image_id is None else image_id
        image_id, _ = self.free_id(wanted, path, {})
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        try:
            searchable = snapshot.store.searchable(features)
            with self.writing():
                self.storage.add([image_id], searchable, [path], [upload.metadata or {}])
        except BaseException:  # not acknowledged: the file goes back to the trash
            os.replace(target, source)
            raise
        info = target.stat()
        fingerprint = (info.st_size, info.st_mtime_ns)
        Thumbnails(self.location.saved_dir).write_quietly(path, fingerprint, upload.image)
        return Added(image_id, path, True)
