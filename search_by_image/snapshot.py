"""What one request reads: a collection's index, metadata table and embedder, as one immutable set.

A request takes its collection's snapshot once (`Collection.require`) and passes it down: the
filters are applied to its metadata, the upload decoded at its embedder's size, the query embedded
and searched with its embedder and index, and the results joined with its metadata. A write or a
reload swaps a new snapshot into the collection meanwhile (by reference), never into a request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from search_by_image.batcher import QueryBatcher
from search_by_image.embedder import Embedder
from search_by_image.errors import UnknownImage
from search_by_image.filters import Condition, matching_rows
from search_by_image.index_store import IndexStore
from search_by_image.metadata import Metadata

#: (inode, mtime_ns, size) of the manifest and of the metadata CSV when the snapshot was loaded
Stamp = tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]


@dataclass(frozen=True)
class Hits:
    snapshot: Snapshot
    hits: list[tuple[int, float]]
    #: images that passed the filters (None without filters)
    matched: int | None
    embed_ms: float
    search_ms: float


@dataclass(frozen=True)
class Snapshot:
    #: the collection's name
    name: str
    store: IndexStore
    metadata: Metadata
    embedder: Embedder
    batcher: QueryBatcher
    stamp: Stamp

    def allowed(self, conditions: dict[str, Condition]) -> np.ndarray | None:
        """The ids that pass the filters (FilterError for one this metadata cannot apply); None
        without filters. Cheap next to a forward pass: a request checks its filters first."""
        if not conditions:
            return None
        return self.store.ids[matching_rows(conditions, self.metadata, len(self.store))]

    def search(self, image: Image.Image, k: int, allowed: np.ndarray | None = None, offset: int = 0) -> Hits:
        """Results `offset` to `offset + k` for an image, among the `allowed` ids (`allowed`)."""
        started = time.perf_counter()
        query = self.batcher.embed(self.embedder.preprocessing(image))
        embedded = time.perf_counter()
        (hits,) = self.store.search(query[None], offset + k, allowed)
        searched = time.perf_counter()
        return Hits(
            self,
            hits[offset:],
            None if allowed is None else len(allowed),
            (embedded - started) * 1e3,
            (searched - embedded) * 1e3,
        )

    def similar(
        self, image_id: int, k: int, allowed: np.ndarray | None = None, offset: int = 0
    ) -> tuple[str, Hits]:
        """ "More like this": the images nearest an indexed one, from its stored descriptor (no
        decode, no forward pass), itself left out. Returns its path and the hits."""
        store = self.store
        row = store.row_of_id.get(image_id)
        if row is None:
            raise UnknownImage(f"collection {self.name!r} has no image with id {image_id}")
        started = time.perf_counter()
        query = np.asarray(store.features[row], dtype=np.float32)
        (hits,) = store.search(query[None], offset + k + 1, allowed)
        others = [hit for hit in hits if hit[0] != image_id][offset : offset + k]
        matched = None if allowed is None else len(allowed) - int(np.isin(image_id, allowed))
        return store.paths[row], Hits(self, others, matched, 0.0, (time.perf_counter() - started) * 1e3)
