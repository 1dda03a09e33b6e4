"""Moving a collection between its two kinds of storage, and checking both answer alike.

`export` copies a saved (embedded) collection into Milvus: every id, searchable vector (whitened
as the saved index searches), path and metadata row, with Milvus's index chosen as near the saved
one as it has (milvus_store.index_params). `compare` then checks that the counts agree and that a
sample of searches, unfiltered and filtered, give the same results through both: the same first
result and the same top 10 (as a set, scores within 1e-3), for each sampled image's own vector.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search_by_image.catalog.filters import Condition
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.index.milvus_store import BATCH, MilvusStorage
from search_by_image.index.store import IndexStore
from search_by_image.index.vector_storage import StorageAddress

#: the file in a collection's saved folder naming the engine its vectors are in
STORAGE_FILE = "storage.json"
TOP = 10


@dataclass
class Agreement:
    """What `compare` found: counts, and how many sampled searches agreed."""

    saved_count: int
    engine_count: int
    searches: int = 0
    same_first: int = 0
    same_top: int = 0
    filtered: int = 0
    filtered_same: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.saved_count == self.engine_count
            and self.same_top == self.searches
            and self.filtered_same == self.filtered
        )

    def summary(self) -> str:
        return (
            f"counts: saved {self.saved_count}, engine {self.engine_count}; "
            f"searches: {self.same_top}/{self.searches} same top {TOP} "
            f"({self.same_first} same first); filtered: {self.filtered_same}/{self.filtered} same"
        )


#: one batch of rows: ids, searchable vectors, paths, metadata rows
Batch = tuple[list[int], np.ndarray, list[str], list[dict[str, Any]]]


def rows_of(store: IndexStore, metadata: MetadataView) -> Iterator[Batch]:
    """The store's rows in batches: ids, searchable vectors, paths, metadata rows."""
    for start in range(0, len(store), BATCH):
        stop = min(start + BATCH, len(store))
        ids = [int(i) for i in store.ids[start:stop]]
        rows = metadata.rows_for(ids)
        yield (
            ids,
            store.searchable(np.asarray(store.features[start:stop])),
            store.paths[start:stop],
            [rows.get(i, {}) for i in ids],
        )


def export(store: IndexStore, metadata: MetadataView, target: MilvusStorage, progress=None) -> None:
    """Copy every row of `store` into `target` (created with the saved index's kind); rows
    already there under the same ids are replaced, so an interrupted export is run again."""
    dim = store.whitening.dims if store.whitening else store.manifest.embedder.dim
    target.create(dim, store.manifest.index_type, len(store), store.manifest.nprobe or None)
    for ids, vectors, paths, rows in rows_of(store, metadata):
        target.add(ids, vectors, paths, rows, replace=True)
        if progress:
            progress(len(ids))


def record(saved_dir: Path, address: StorageAddress, target: MilvusStorage) -> None:
    """Write `storage.json` (atomically) saying where the collection's vectors now live."""
    text = json.dumps({"store": str(address), "collection": target.collection, "kinds": target.kinds})
    temporary = saved_dir / f".{STORAGE_FILE}.tmp"
    with open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, saved_dir / STORAGE_FILE)


def recorded_kinds(saved_dir: Path) -> dict[str, Any]:
    """The metadata columns' kinds `record` wrote (empty when the collection names no engine)."""
    try:
        return dict(json.loads((saved_dir / STORAGE_FILE).read_text()).get("kinds") or {})
    except (OSError, ValueError):
        return {}


def compare(
    store: IndexStore,
    metadata: MetadataView,
    target: MilvusStorage,
    sample: int = 100,
    filters: list[dict[str, Condition]] | None = None,
    seed: int = 0,
) -> Agreement:
    """Counts, then `sample` searches by stored vectors through both, then one search per
    filter in `filters` (`allowed` ids for the saved store, the expression for the engine)."""
    agreement = Agreement(len(store), target.count())
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(store), size=min(sample, len(store)), replace=False))
    raw = np.asarray(store.features)[chosen]  # the saved store whitens them itself
    queries = store.searchable(raw)
    engine_hits = [
        hit for start in range(0, len(queries), 20) for hit in target.search(queries[start : start + 20], TOP)
    ]
    for saved, engine in zip(store.search(raw, TOP), engine_hits):
        agreement.searches += 1
        agreement.same_first += bool(saved and engine and saved[0][0] == engine[0][0])
        agreement.same_top += _same(saved, engine, agreement.differences)
    for conditions in filters or []:
        allowed = metadata.select(conditions)
        row = agreement.filtered % len(queries)
        (saved,) = store.search(raw[row][None], TOP, allowed)
        (engine,) = target.search(queries[row][None], TOP, conditions)
        agreement.filtered += 1
        agreement.filtered_same += _same(saved, engine, agreement.differences)
    return agreement


def _same(saved: list[tuple[int, float]], engine: list[tuple[int, float]], differences: list[Any]) -> bool:
    """The same ids (a tie at the 10th place may swap with its twin) with the same scores."""
    if {i for i, _ in saved} == {i for i, _ in engine} and np.allclose(
        [s for _, s in saved], [s for _, s in engine], atol=1e-3
    ):
        return True
    if len(differences) < 5:
        differences.append(f"saved {saved[:3]}... engine {engine[:3]}...")
    return False
