"""A served collection whose vectors live in a vector engine (Milvus), shared by every replica.

The collection's folders stay where every replica reads them (a shared volume): the images and
uploads, thumbnails, and the saved folder's manifest (the model) and whitening. Its
`storage.json` (storage_transfer.py, written by `python -m search_by_image.cli.storage export`)
names the engine; the ids, vectors, paths and metadata are the engine's. A replica holds no copy
of them: a search, an add or a delete through any replica goes to the engine, and every replica's
searches see it within the engine's staleness bound (SBI_MILVUS_CONSISTENCY, milvus_store.py).

Adds name an image by its content (the same photo twice is one image, whichever replica gets
it): its file `uploads/<hash>`, its id 53 bits of the hash (exact in a browser's JSON; the next
free id on a collision), so replicas need no shared id counter. The engine acknowledges a
write once it is in its log (durable across a crash); the file is written before, so an
acknowledged image always has its file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import cast

from search_by_image.catalog.locations import Location
from search_by_image.catalog.metadata_writes import check_rows
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.errors import IndexMissing, UnknownImage
from search_by_image.images import formats
from search_by_image.index.disk import Manifest
from search_by_image.index.live_files import write_durably
from search_by_image.index.milvus_store import MilvusStorage
from search_by_image.index.storage_transfer import STORAGE_FILE
from search_by_image.index.vector_storage import StorageAddress, StorageHealth
from search_by_image.index.whitening import Whitening
from search_by_image.layout import MANIFEST_FILE, UPLOADS_DIR, WHITENING_FILE
from search_by_image.ranking import verifier
from search_by_image.ranking.duplicates import Group
from search_by_image.serving.duplicate_groups import PASS_WAIT_S
from search_by_image.serving.embedder_pool import EmbedderPool
from search_by_image.serving.engine_duplicates import EngineDuplicates
from search_by_image.serving.engine_snapshot import EngineSnapshot, EngineStore, engine_snapshot
from search_by_image.serving.engine_writes import EngineWrites, content_id
from search_by_image.serving.live_writes import Added, Adds, Upload

log = logging.getLogger(__name__)

#: seconds a /health answer about the engine is kept
HEALTH_EVERY_S = 1.0


def stored_in_engine(location: Location) -> bool:
    return (location.saved_dir / STORAGE_FILE).is_file()


class EngineCollection:
    """What the routes use of a collection (as serving/collection.py's), served from the engine."""

    def __init__(self, location: Location, embedders: EmbedderPool):
        self.location = location
        self.snapshot: EngineSnapshot | None = None
        self.problem: str | None = None
        self.loading = True
        self.lock = threading.RLock()
        self._embedders = embedders
        recorded = json.loads((location.saved_dir / STORAGE_FILE).read_text())
        address = StorageAddress.parse(recorded["store"])
        if address is None:
            raise IndexMissing(f"collection {location.name!r}: {STORAGE_FILE} names no engine")
        self.storage = MilvusStorage(
            address, location.name, recorded.get("kinds"), embedders.settings.milvus_consistency
        )
        settings = embedders.settings
        self._verifier = (
            verifier.Verifier(location, settings.max_image_pixels, settings.verify_top)
            if settings.verify_top and verifier.available()
            else None
        )
        self._rotations = settings.query_rotations
        self._expand = settings.query_expansion
        self._duplicates = EngineDuplicates(location, self._verifier)
        #: what a duplicates review writes besides deletes (undo, merged metadata)
        self.writes = EngineWrites(location, self.storage, self.require)
        self._health: tuple[float, StorageHealth] | None = None

    @property
    def name(self) -> str:
        return self.location.name

    @property
    def thumbnails(self) -> Thumbnails:
        return Thumbnails(self.location.saved_dir)

    def health(self) -> StorageHealth:
        """Where the vectors live and whether the engine answers: asked at most every
        HEALTH_EVERY_S (probes and pages ask often; each asks the engine once)."""
        now = time.monotonic()
        if self._health is None or now - self._health[0] > HEALTH_EVERY_S:
            self._health = (now, self.storage.health())
        return self._health[1]

    def refresh(self) -> bool:
        """Read the model and whitening from the shared folder once; the rows are the engine's."""
        try:
            if self.snapshot is not None:
                return False
            saved = self.location.saved_dir
            manifest = Manifest.model_validate_json((saved / MANIFEST_FILE).read_text())
            whitening = Whitening.load(saved / WHITENING_FILE) if manifest.whitening_dims else None
            embedder, batcher = self._embedders.get(manifest.embedder)
            store = EngineStore(self.storage, manifest, whitening, self.location)
            fields = dict(name=self.name, embedder=embedder, batcher=batcher, stamp=(None, None))
            self.snapshot = engine_snapshot(
                {**fields, "verifier": self._verifier, "rotations": self._rotations, "expand": self._expand},
                store,
            )
            self.problem = None
            log.info("Collection %s: served from %s", self.name, self.storage.engine)
            return True
        except (OSError, ValueError) as exc:
            self.problem = f"its saved folder cannot be read: {exc}"
            log.warning("Collection %s: %s", self.name, self.problem)
            return False
        finally:
            self.loading = False

    def require(self) -> EngineSnapshot:
        if self.snapshot is None:
            self.refresh()
        if self.snapshot is None:
            raise IndexMissing(f"collection {self.name!r} is not searchable: {self.problem}")
        return self.snapshot

    def add(self, uploads: list[Upload], snapshot: EngineSnapshot | None = None) -> Adds:
        """Store each upload's file, thumbnail and row; acknowledged once the engine has it."""
        snapshot = snapshot or self.require()
        check_rows([upload.metadata for upload in uploads], snapshot.metadata)
        embedder = snapshot.embedder
        started = time.perf_counter()
        features = embedder.embed_prepared([embedder.preprocessing(upload.image) for upload in uploads])
        embedded = time.perf_counter()
        store = snapshot.store
        added = Adds()
        ids: list[int] = []
        rows: list[int] = []
        paths: list[str] = []
        metadata: list[dict] = []
        keypoints: list = []
        for row, upload in enumerate(uploads):
            image_id, digest = content_id(upload.data)
            path = f"{UPLOADS_DIR}/{digest}{formats.stored_suffix(upload.format)}"
            image_id, fresh = self.writes.free_id(image_id, path, dict(zip(ids, paths)))
            if fresh:
                fingerprint = write_durably(self.location.images_dir / path, upload.data)
                self.thumbnails.write_quietly(path, fingerprint, upload.image)
                keypoints.append((path, fingerprint, upload.data, upload.image))
                ids.append(image_id)
                rows.append(row)
                paths.append(path)
                metadata.append(upload.metadata or {})
            added.append(Added(image_id, path, fresh))
        if self._verifier is not None and keypoints:  # stored before the engine acknowledges
            self._verifier.images.put(keypoints)
        if ids:
            self.writes.learn_kinds(metadata)
            with self.writes.writing():
                self.storage.add(ids, store.searchable(features[rows]), paths, metadata)
        added.embed_ms = (embedded - started) * 1e3
        added.write_ms = (time.perf_counter() - embedded) * 1e3
        return added

    def delete(self, image_id: int) -> tuple[str, Path | None]:
        """Gone from the engine (every replica's next search), its file moved to the trash."""
        row = self.storage.rows([image_id], ["path"]).get(image_id)
        if row is None:
            raise UnknownImage(f"collection {self.name!r} has no image with id {image_id}")
        path = row["path"]
        with self.writes.writing():
            self.storage.delete([image_id])
        if self._verifier is not None:
            self._verifier.images.store.forget([path])
        source = self.location.images_dir / path
        trashed = self.location.trash_dir / f"{image_id}-{Path(path).name}"
        try:
            trashed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, trashed)
        except OSError:
            return path, None  # another replica moved it, or it is gone: the delete stands
        return path, trashed

    def duplicates(
        self,
        threshold: float | None,
        keep: Callable[[int, int], bool] | None = None,
        scope: Hashable = None,
        wait_s: float | None = PASS_WAIT_S,
    ) -> tuple[EngineSnapshot, list[Group]]:
        """Duplicate groups from the engine's own neighbours, as Collection.duplicates's
        (engine_duplicates.py: the engine listed per request, the pass carried over writes)."""
        snapshot = self.require()
        store = cast(EngineStore, snapshot.store)
        return snapshot, self._duplicates.groups(store, threshold, keep, scope, wait_s)

    def close(self) -> None:
        self.storage.close()
