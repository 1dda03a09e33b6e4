"""What the routes share: every collection with its current snapshot, and the shared embedders.

Built once at startup (main.py's lifespan). The service answers at once: its collections are found
at start, their indexes and models loaded by a background thread (`SBI_LOAD_IN_BACKGROUND`), with
/health saying "loading" and how far it has got, and a request to a collection still loading gets
a 503 with Retry-After (errors.Loading). Then a watcher thread polls each collection's saved files
every `reload_seconds`, so an index rewritten by `with_faiss.py`, or a new collection, is served
without a restart. Each collection's embedder comes from its index manifest, never from the
settings, so a query is processed exactly like its collection was.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from typing import cast

from pydantic import BaseModel, Field

from search_by_image.catalog import locations
from search_by_image.devices import resolve_device, single_threaded_blas
from search_by_image.images.decoding import decode_budget
from search_by_image.indexing import watch
from search_by_image.indexing.background import BackgroundIndexer
from search_by_image.serving.collection import Collection
from search_by_image.serving.embedder_pool import EmbedderPool
from search_by_image.serving.engine_collection import EngineCollection, stored_in_engine
from search_by_image.settings import Settings

log = logging.getLogger(__name__)


#: glibc mallopt parameters: (name, value)
MALLOC_OPTIONS = (
    (-8, 2),  # M_ARENA_MAX: two arenas, not 8 per core
    (-3, 1 << 20),
)  # M_MMAP_THRESHOLD: 1 MiB and up is mmap()ed, unmapped when freed


def give_freed_memory_back() -> None:
    """Make freed image buffers leave the process (glibc; a no-op elsewhere).

    By default each worker thread gets its own malloc arena, and glibc raises its mmap threshold
    up to 32 MiB as big blocks are freed, so Pillow's 16 MiB blocks end up in arenas that keep
    them: hostile uploads decoded one after another (decoding.decode_budget) still left gigabytes
    resident (bench/README.md, "Figures behind the code's choices"). Same as MALLOC_ARENA_MAX=2
    MALLOC_MMAP_THRESHOLD_=1048576 (tests/system/test_memory.py).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    for option, value in MALLOC_OPTIONS:
        mallopt(option, value)


class LoadingStatus(BaseModel):
    """The service answers as soon as it starts; its collections' indexes and models load after."""

    collection: str | None = Field(None, description="the collection being loaded now")
    done: int = Field(0, description="collections loaded so far")
    total: int = Field(description="collections to load")


def limit_decoding(settings: Settings) -> None:
    """The process' decode budget (images.decoding.decode_budget) from the settings."""
    decode_budget.capacity = settings.decode_memory_mb * 2**20


def served_collection(location: locations.Location, embedders: EmbedderPool) -> Collection:
    """The collection as served: from its saved folder, or from the vector engine its
    storage.json names (engine_collection.py: the same reads and writes the routes use)."""
    if stored_in_engine(location):
        return cast(Collection, EngineCollection(location, embedders))
    return Collection(location, embedders)


class SearchService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.embedders = EmbedderPool(settings)
        self.collections: dict[str, Collection] = {}
        self._stopping = threading.Event()
        self._refreshing = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._folders: threading.Thread | None = None
        self._loader: threading.Thread | None = None
        self.indexer: BackgroundIndexer | None = None
        #: collections loaded so far out of those found at start, while they load (None after)
        self.loading: LoadingStatus | None = None

    @classmethod
    def start(cls, settings: Settings) -> SearchService:
        single_threaded_blas()
        give_freed_memory_back()
        limit_decoding(settings)
        service = cls(settings)
        service.collections = {
            name: served_collection(location, service.embedders)
            for name, location in locations.discover(settings).items()
        }
        service.loading = LoadingStatus(total=len(service.collections))
        if settings.load_in_background:
            service._loader = threading.Thread(target=service._load, name="index-loader", daemon=True)
            service._loader.start()
        else:
            service._load()
        return service

    def _load(self) -> None:
        """Load every collection found at start, then start the reload watcher and the indexer."""
        started = time.perf_counter()
        try:
            for name, collection in list(self.collections.items()):
                if self._stopping.is_set():
                    return
                if self.loading is not None:
                    self.loading = self.loading.model_copy(update={"collection": name})
                collection.refresh()
                if self.loading is not None:
                    self.loading = self.loading.model_copy(update={"done": self.loading.done + 1})
            self.refresh()  # collections created meanwhile
        except Exception:  # noqa: BLE001 - the service answers; /health says what is missing
            log.exception("Loading the collections failed")
        finally:
            for collection in self.collections.values():
                collection.loading = False
            self.loading = None
        log.info("Collections loaded in %.2f s", time.perf_counter() - started)
        for collection in self.collections.values():
            if collection.snapshot is None:
                log.warning("Collection %s is not searchable: %s", collection.name, collection.problem)
        self._start_threads()

    def _start_threads(self) -> None:
        """The reload watcher, and the indexer and folder watcher where configured (not once
        stopped)."""
        settings = self.settings
        with self._refreshing:
            if self._stopping.is_set():
                return
            if settings.reload_seconds > 0:
                self._watcher = threading.Thread(target=self._watch, name="index-watcher", daemon=True)
                self._watcher.start()
            if settings.index_on_start or settings.watch:
                self.indexer = BackgroundIndexer(settings, on_indexed=self.refresh).start()
            if settings.watch:
                self._folders = threading.Thread(
                    target=self._follow_folders, name="folder-watcher", daemon=True
                )
                self._folders.start()

    def _follow_folders(self) -> None:
        """Watch mode: after the start's catch-up run, each collection whose folder changes is
        indexed in the background like it (its progress in /health), then served."""
        if self.indexer is not None:
            self.indexer.wait()

        def reindex(location: locations.Location) -> None:
            self.indexer = BackgroundIndexer(self.settings, self.refresh, {location.name: location})
            self.indexer.start().wait()

        try:
            watch.follow(
                lambda: locations.discover(self.settings),
                reindex,
                self.settings.watch_quiet_ms,
                self._stopping,
            )
        except Exception:  # noqa: BLE001 - searching goes on without watch mode
            log.exception("Watch mode stopped; restart the service to resume it")

    def refresh(self) -> None:
        """Pick up new, rewritten and removed collections (what the watcher and the background
        indexer run)."""
        with self._refreshing:
            found = locations.discover(self.settings)
            current = dict(self.collections)
            for name, location in found.items():
                if name not in current or current[name].location != location:
                    current[name] = served_collection(location, self.embedders)
                current[name].refresh()
            self.collections = {name: current[name] for name in found}

    def _watch(self) -> None:
        while not self._stopping.wait(self.settings.reload_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the watcher must outlive one bad poll
                log.exception("Reloading the collections failed; serving what is loaded")

    def stop(self) -> None:
        with self._refreshing:  # no thread is started after this
            self._stopping.set()
        if self._loader is not None:
            self._loader.join(timeout=30)
        if self.indexer is not None:
            self.indexer.stop()
        for thread in (self._watcher, self._folders):
            if thread is not None:
                thread.join(timeout=30)
        self.embedders.close()

    def get(self, name: str) -> Collection:
        """Raises locations.InvalidName or locations.UnknownCollection with a reason."""
        locations.validate_name(name)
        collection = self.collections.get(name)
        if collection is None:
            known = ", ".join(self.collections)
            raise locations.UnknownCollection(f"no collection named {name!r}; known collections: {known}")
        return collection

    @property
    def default(self) -> Collection:
        return self.collections[locations.DEFAULT]

    @property
    def ready(self) -> bool:
        return any(c.snapshot is not None for c in self.collections.values())
