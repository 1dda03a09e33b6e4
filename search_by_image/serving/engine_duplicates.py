"""Duplicate groups of a collection stored in a vector engine, from the engine's own neighbours.

A request lists the engine's ids (`MilvusStorage.ids`: 8 bytes an image, MAX_WINDOW a round
trip) when a replica marked a write since the last listing (a file in the shared saved folder,
engine_writes.py) or that one is over RELIST_S old: writes through any replica show on the next
page, and a page with nothing written since costs no call to the engine. `EngineListing` is that
list read as ranking/duplicates.py reads a store: each image's stored (searchable) vector
searched in the engine for its nearest, ENGINE_QUERIES images a call, never an N x N pass. The
pass is carried from one listing to the next by ranking/duplicate_pass.py as for the embedded
default: deletes dropped, only added images searched and verified. Paths are kept between
listings (only the added images' are fetched), so a listing costs the ids alone.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, cast

import numpy as np

from search_by_image.catalog.locations import Location
from search_by_image.index.live_store import LiveStore
from search_by_image.index.milvus_store import BATCH
from search_by_image.ranking.duplicates import Group
from search_by_image.ranking.verifier import Verifier
from search_by_image.serving.duplicate_groups import PASS_WAIT_S, DuplicateGroups
from search_by_image.serving.engine_snapshot import EngineStore
from search_by_image.serving.engine_writes import writes_mark

#: queries per engine search of a pass (a call of 1,024 against 10k images took over 10 s in
#: milvus-lite on a loaded 2-core machine)
ENGINE_QUERIES = 128
#: seconds a call of a pass may take (a page of the listing, a batch of searches): a pass is not
#: a request's search, a slow engine is waited for
PASS_TIMEOUT_S = 60.0
#: seconds a listing is trusted while no write was marked: writes that bypass the service (another
#: tool writing to the engine) show within this
RELIST_S = 60.0


class EngineListing:
    """The engine's images at one moment, as a duplicates pass reads a store (see the module)."""

    def __init__(self, engine: EngineStore, ids: np.ndarray, paths: dict[int, str]):
        #: rows read as of the listing at least (a vector listed is found); searches bounded
        self.storage = engine.storage.strong()
        self._searched = engine.storage
        self.ids = np.asarray(ids, np.int64)
        #: one object for every listing: an id's vector never changes in the engine (an add of
        #: other content takes another id), so duplicate_pass carries a pass over any writes
        self.base = engine
        self.whitening = engine.whitening
        self.manifest = engine.manifest
        self.fingerprint = engine.fingerprint
        self.fingerprint_of = engine.fingerprint_of
        digest = hashlib.sha256(self.ids.tobytes()).hexdigest()[:16]
        self.version = f"{engine.manifest.generation}:{digest}"
        self._paths = paths
        self._dim = engine.dim

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: object) -> bool:
        at = int(np.searchsorted(self.ids, image_id)) if isinstance(image_id, (int, np.integer)) else -1
        return 0 <= at < len(self.ids) and self.ids[at] == image_id

    def vectors(self, ids: Any) -> np.ndarray:
        """The stored vectors, already searchable (whitened); one deleted meanwhile is zeros,
        which nothing scores near."""
        ids = [int(i) for i in ids]
        stored = self.storage.vectors(ids)
        blank = np.zeros(self._dim, np.float32)
        return np.stack([stored.get(i, blank) for i in ids]) if ids else np.zeros((0, self._dim), np.float32)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """The engine's nearest of stored vectors, among the images listed (an image added after
        the listing waits for the next one); ENGINE_QUERIES a call, each within its timeout."""
        batches = (queries[at : at + ENGINE_QUERIES] for at in range(0, len(queries), ENGINE_QUERIES))
        found = [row for batch in batches for row in self._searched.search(batch, k, timeout=PASS_TIMEOUT_S)]
        return [[(i, s) for i, s in row if i in self] for row in found]

    def path_of(self, image_id: int) -> str:
        return self._paths[int(image_id)]


class EngineDuplicates:
    """A collection's duplicates over the engine: the engine listed (see the module docstring),
    the pass and its groups kept by duplicate_groups.py, carried from listing to listing."""

    def __init__(self, location: Location, verifier: Verifier | None):
        self._location = location
        self._lock = threading.Lock()
        self._groups = DuplicateGroups(location.name, verifier)
        self._paths: dict[int, str] = {}
        #: the last listing, the writes mark it was taken under, and when
        self._listed: tuple[EngineListing, tuple[int, int] | None, float] | None = None

    def groups(
        self,
        engine: EngineStore,
        threshold: float | None,
        keep: Callable[[int, int], bool] | None,
        scope: Hashable,
        wait_s: float | None = PASS_WAIT_S,
    ) -> list[Group]:
        with self._lock:
            listing = self._listing(engine)
        return self._groups.groups(cast(LiveStore, listing), threshold, keep, scope, wait_s)

    def _listing(self, engine: EngineStore) -> EngineListing:
        """The last listing while no replica marked a write since (engine_writes.WRITES_MARK)
        and it is under RELIST_S old, else the engine listed again."""
        mark, now = writes_mark(self._location), time.monotonic()
        last = self._listed
        if last is not None and mark is not None and last[1] == mark and now - last[2] < RELIST_S:
            return last[0]
        listing = self._listed_now(engine)
        self._listed = (listing, mark, now)
        return listing

    def _listed_now(self, engine: EngineStore) -> EngineListing:
        """The engine's ids now, with the paths of those not seen before fetched."""
        storage = engine.storage.strong()  # a write marked must be in the listing that follows it
        ids = storage.ids(timeout=PASS_TIMEOUT_S)
        listed = set(ids.tolist())
        self._paths = {i: p for i, p in self._paths.items() if i in listed}
        missing = [i for i in ids.tolist() if i not in self._paths]
        for start in range(0, len(missing), BATCH):
            rows = storage.rows(missing[start : start + BATCH], ["path"])
            self._paths.update({i: row["path"] for i, row in rows.items()})
        return EngineListing(engine, ids[np.isin(ids, np.fromiter(self._paths, np.int64))], self._paths)
