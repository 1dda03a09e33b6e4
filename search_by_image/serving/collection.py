"""One served collection: the snapshot that searches read, reloaded when its files change.

Readers take `collection.snapshot` once and use only that (snapshot.py), so a request sees one
index, one metadata table and one embedder even when a write or a reload swaps a new snapshot in
meanwhile (a swap by reference: nobody ever sees half an index). Live adds and deletes are
live_writes.py; they take the collection's thread lock, like `refresh`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

from search_by_image.catalog.locations import Location
from search_by_image.catalog.metadata_import import sync
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.errors import (
    IndexBusy,
    IndexCorrupt,
    IndexMissing,
    Loading,
    NoIndex,
)
from search_by_image.index.disk import Manifest, writer_lock
from search_by_image.index.store import IndexStore
from search_by_image.layout import MANIFEST_FILE, PENDING_FILE, PREVIOUS_DIR
from search_by_image.metrics import RELOADS
from search_by_image.model.backbones import WeightsUnavailable
from search_by_image.ranking import verifier
from search_by_image.ranking.duplicates import Group, Neighbours, find_groups, verified_copies
from search_by_image.serving.embedder_pool import EmbedderPool
from search_by_image.serving.live_writes import Added, LiveWrites, Upload
from search_by_image.serving.snapshot import Snapshot, Stamp

log = logging.getLogger(__name__)

#: Duplicate groups kept per collection generation, by threshold (each a pass over the neighbours).
KEPT_THRESHOLDS = 8


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
        self._duplicates_lock = threading.Lock()
        self._neighbours: Neighbours | None = None
        self._groups: dict[tuple[float | None, Hashable], list[Group]] = {}
        self._grouping = threading.Lock()
        self._copies: dict[tuple[int, int], float] | None = None
        settings = embedders.settings
        #: local verification of search results and duplicates (None: off, or no OpenCV)
        self._verifier = (
            verifier.Verifier(location, settings.max_image_pixels, settings.verify_top)
            if settings.verify_top and verifier.available()
            else None
        )
        self._expand = settings.query_expansion
        self._rotations = settings.query_rotations
        #: the collection's metadata in its database (one view for every snapshot)
        self.metadata = MetadataView(location.saved_dir)
        self.writes = LiveWrites(self)

    def add(self, uploads: list[Upload], snapshot: Snapshot | None = None) -> list[Added]:
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

        `.previous/` left by a writer that crashed mid-commit is rolled back first, and a live
        add or delete it was part of undone or finished (journal). One left by a live writer (a
        commit in flight) is waited for, unless nothing is served yet: then the
        complete old set it keeps is loaded. A broken index on disk keeps the last good snapshot
        serving, with the problem reported.
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
            for problem in sync(self.location.saved_dir, self.location.metadata_csv, store.ids, store.paths):
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
            if current is None or current.store is not store:
                RELOADS.labels(self.name, "loaded").inc()
                log.info(
                    "Collection %s: serving %d images (%s)", self.name, len(store), store.manifest.index_type
                )
            return True

    def _interrupted(self) -> bool:
        """A commit (`.previous/`) or a live write (journal) was left half done, or is in flight."""
        saved = self.location.saved_dir
        return (saved / PREVIOUS_DIR).exists() or (saved / PENDING_FILE).exists()

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

    def duplicates(
        self,
        threshold: float | None,
        keep: Callable[[int, int], bool] | None = None,
        scope: Hashable = None,
    ) -> tuple[Snapshot, list[Group]]:
        """Duplicate groups of the current snapshot: its neighbour list is computed once per
        generation (one caller computes, the others wait for it), and the groups of the last
        few (threshold, scope) are kept until the index changes. `keep(a, b)` drops links (pairs
        decided apart, images outside a filter); `scope` names what it keeps, for the cache."""
        snapshot = self.require()
        generation = snapshot.store.manifest.generation
        with self._duplicates_lock:
            if self._neighbours is None or self._neighbours.generation != generation:
                self._neighbours, self._groups = Neighbours.of(snapshot.store), {}
                self._copies = self._verified_copies(snapshot.store, self._neighbours)
            neighbours = self._neighbours
            key = (threshold, scope)
            if key not in self._groups:
                if len(self._groups) >= KEPT_THRESHOLDS:
                    self._groups.pop(next(iter(self._groups)))
                self._groups[key] = find_groups(snapshot.store, threshold, neighbours, self._copies, keep)
            return snapshot, self._groups[key]

    def copy_groups(self, snapshot: Snapshot) -> dict[int, int] | None:
        """Each image in a `copies` group (at the default threshold) -> the group's number, for
        collapsing results; None until the groups of `snapshot`'s generation are computed (one
        background thread computes them on the first call, so no search waits for it)."""
        groups = self._groups.get((None, None))
        neighbours = self._neighbours
        if (
            groups is None
            or neighbours is None
            or neighbours.generation != snapshot.store.manifest.generation
        ):
            if not self._grouping.locked():
                threading.Thread(
                    target=self._group_in_background, name=f"groups-{self.name}", daemon=True
                ).start()
            return None
        return {i: number for number, g in enumerate(groups) if g.kind == "copies" for i, _ in g.images}

    def _group_in_background(self) -> None:
        if not self._grouping.acquire(blocking=False):
            return
        try:
            self.duplicates(None)
        except Exception:  # noqa: BLE001 - collapsing waits for the next try; searches go on
            log.exception("Collection %s: could not group copies", self.name)
        finally:
            self._grouping.release()

    def _verified_copies(
        self, store: IndexStore, neighbours: Neighbours
    ) -> dict[tuple[int, int], float] | None:
        """Pairs of neighbours that local verification finds to be copies; None where it is
        off: groups then come from scores alone."""
        if self._verifier is None:
            return None
        return verified_copies(store, neighbours, functools.partial(self._verifier.is_copy, store))

    def swap(self, store: IndexStore) -> None:
        """Serve `store` (written by a live write); its metadata is already in the database."""
        snapshot = self.require()
        store.place(self._embedders.device)
        self.snapshot = dataclasses.replace(snapshot, store=store, stamp=self._stamp())
