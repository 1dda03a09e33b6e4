"""One served collection: the snapshot that searches read, kept up to date with what is on disk.

Readers take `collection.snapshot` once and use only that (snapshot.py), so a request sees one
index, one metadata table and one embedder even when a write or a reload swaps a new snapshot in
meanwhile (a swap by reference: nobody ever sees half an index). `refresh` (each reload tick and
live write) loads the saved index when its manifest changed, else applies the live writes logged
since (index/live_log.py) by any process: a poll of the log's last `seq`. Writes: live_writes.py
(under the collection's thread lock, like `refresh`); folds: folding.py.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

from search_by_image.catalog.locations import Location
from search_by_image.catalog.metadata_import import sync_csv
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.errors import (
    IndexBusy,
    IndexCorrupt,
    IndexMissing,
    Loading,
    NoIndex,
    StorageError,
)
from search_by_image.index import live_log
from search_by_image.index.disk import writer_lock
from search_by_image.index.live_files import finish_deletes
from search_by_image.index.live_store import LiveStore, load_live
from search_by_image.index.store import IndexStore
from search_by_image.layout import CATALOG_FILE, MANIFEST_FILE, PREVIOUS_DIR
from search_by_image.metrics import RELOADS
from search_by_image.model.backbones import WeightsUnavailable
from search_by_image.ranking import verifier
from search_by_image.ranking.duplicates import Group
from search_by_image.serving import folding
from search_by_image.serving.duplicate_groups import PASS_WAIT_S, DuplicateGroups
from search_by_image.serving.embedder_pool import EmbedderPool
from search_by_image.serving.live_writes import Adds, LiveWrites, Upload
from search_by_image.serving.snapshot import Snapshot, Stamp

log = logging.getLogger(__name__)


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
        #: until its first refresh: the service answers while its collections load (service.py)
        self.loading = True
        self._embedders = embedders
        self.lock = threading.RLock()
        self._failed: Stamp | None = None
        settings = embedders.settings
        #: local verification of search results and duplicates (None: off, or no OpenCV)
        self._verifier = (
            verifier.Verifier(location, settings.max_image_pixels, settings.verify_top)
            if settings.verify_top and verifier.available()
            else None
        )
        self._duplicates = DuplicateGroups(location.name, self._verifier, settings.duplicates_workers)
        self._expand = settings.query_expansion
        self._rotations = settings.query_rotations
        self._fold_at = (settings.fold_rows, settings.fold_fraction)
        self._folder = folding.Folder()
        self._log: sqlite3.Connection | None = None
        #: the collection's metadata in its database (one view for every snapshot)
        self.metadata = MetadataView(location.saved_dir)
        self.writes = LiveWrites(self)

    @property
    def log(self) -> sqlite3.Connection:
        """The connection to the collection's live-write log (opened, and created, on first use)."""
        if self._log is None:
            try:
                self._log = live_log.open_log(self.location.saved_dir)
            except (OSError, sqlite3.Error) as exc:
                raise StorageError(f"collection {self.name!r}: cannot open its database: {exc}") from exc
        return self._log

    def _changes_after(self, seq: int) -> list[live_log.Change]:
        """Logged live writes above `seq`; none when there is no log (or it cannot be read)."""
        try:
            if self._log is None and not (self.location.saved_dir / CATALOG_FILE).exists():
                return []
            return live_log.rows_after(self.log, seq) if live_log.max_seq(self.log) > seq else []
        except (StorageError, sqlite3.Error) as exc:
            log.warning("Collection %s: live writes not read: %s", self.name, exc)
            return []

    def add(self, uploads: list[Upload], snapshot: Snapshot | None = None) -> Adds:
        """Store, embed and index `uploads` (live_writes.LiveWrites.add)."""
        return self.writes.add(uploads, snapshot)

    def delete(self, image_id: int) -> tuple[str, Path | None]:
        """Remove one image to the trash (live_writes.LiveWrites.delete)."""
        return self.writes.delete(image_id)

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
            if self.loading:
                raise Loading(
                    f"collection {self.name!r} is loading its index (the service has just started); "
                    "retry in a moment"
                )
            problem = self.problem or "none was built"
            raise NoIndex(f"collection {self.name!r} has no usable index yet: {problem}")
        return snapshot

    def refresh(self) -> bool:
        """Swap in what is on disk if it changed (`_refresh`); the collection has loaded after it."""
        try:
            return self._refresh()
        finally:
            self.loading = False

    def _refresh(self) -> bool:
        """Swap in what is on disk if it changed since the current snapshot; True if swapped.

        Live writes logged since the snapshot are applied to it; a rewritten index (a fold, an
        indexer run) is loaded with the log's rows above its `folded_seq` laid over it.
        `.previous/` left by a writer that crashed mid-commit is rolled back first. One left by
        a commit in flight is waited for, unless nothing is served yet: then the complete old
        set it keeps is loaded. A broken index on disk keeps the last good snapshot serving,
        with the problem reported.
        """
        with self.lock:
            if self._interrupted() and not self._roll_back_crashed_commit():
                if self.snapshot is not None:
                    return False
                self._failed = None
                stamp: Stamp = (None, self._stamp()[1])  # reloaded once the commit is done
            else:
                stamp = self._stamp()
            current = self.snapshot
            if current and stamp == current.stamp:
                return self._catch_up(current)
            if stamp == self._failed:
                return False
            try:
                store = self._store_for(stamp, current)
                embedder, batcher = self._embedders.get(store.manifest.embedder)
            except (IndexMissing, IndexCorrupt, WeightsUnavailable) as exc:
                self._failed, self.problem = stamp, str(exc)
                RELOADS.labels(self.name, "failed").inc()
                log.warning("Collection %s: %s", self.name, exc)
                return False
            if current is None or store.base is not current.store.base:
                store.place(self._embedders.device)
            for problem in sync_csv(
                self.location.saved_dir, self.location.metadata_csv, lambda: (store.ids, store.paths)
            ):
                log.info("Collection %s metadata: %s", self.name, problem)
            self.snapshot = Snapshot(
                self.name,
                store,
                self.metadata,
                embedder,
                batcher,
                stamp,
                self._verifier,
                self._expand,
                self._rotations,
            )
            self.problem, self._failed = None, None
            if current is None or current.store.base is not store.base:
                RELOADS.labels(self.name, "loaded").inc()
                log.info(
                    "Collection %s: serving %d images (%s)", self.name, len(store), store.manifest.index_type
                )
            self._fold_if_due(store)
            return True

    def _catch_up(self, current: Snapshot) -> bool:
        """Apply the live writes logged since `current` (by any process); True if there were any."""
        changes = self._changes_after(current.store.seq)
        if not changes:
            return False
        store = current.store.applied(changes)
        self.snapshot = dataclasses.replace(current, store=store)
        self._fold_if_due(store)
        return True

    def _fold_if_due(self, store: LiveStore) -> None:
        if folding.due(store, *self._fold_at):
            saved = self.location.saved_dir
            self._folder.start(lambda: folding.fold(saved, store) and self.refresh())

    def _interrupted(self) -> bool:
        """A commit (`.previous/`) was left half done, or is in flight."""
        return (self.location.saved_dir / PREVIOUS_DIR).exists()

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

    def _store_for(self, stamp: Stamp, current: Snapshot | None) -> LiveStore:
        """The current store caught up with the log when the index files did not change (only
        the CSV did), else the saved index with the log's rows laid over it."""
        if current and stamp[0] == current.stamp[0]:
            return current.store.applied(self._changes_after(current.store.seq))
        try:
            store, changes = load_live(self.location.saved_dir, self.log)
        except StorageError:  # a read-only saved folder without a database: no live writes
            store, changes = LiveStore(IndexStore.load(self.location.saved_dir)), []
        try:
            finish_deletes(store, changes, self.location.images_dir, self.location.trash_dir)
        except OSError as exc:
            log.warning("Collection %s: deleted files not moved to the trash yet: %s", self.name, exc)
        return store

    def duplicates(
        self,
        threshold: float | None,
        keep: Callable[[int, int], bool] | None = None,
        scope: Hashable = None,
        wait_s: float | None = PASS_WAIT_S,
    ) -> tuple[Snapshot, list[Group]]:
        """Duplicate groups of the current snapshot (duplicate_groups.py: its pass computed once
        per generation on a thread of its own, carried over live writes; DuplicatesPending while
        a whole pass runs past `wait_s`). `keep(a, b)` drops links (pairs decided apart, images
        outside a filter); `scope` names what it keeps, for the cache."""
        snapshot = self.require()
        return snapshot, self._duplicates.groups(snapshot.store, threshold, keep, scope, wait_s)
