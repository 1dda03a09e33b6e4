"""A collection's vectors in Milvus: the `VectorStorage` several service replicas share.

One Milvus collection per served collection (`sbi_<name>`), with fields `id` (our image id, the
primary key), `vector` (the searchable descriptor: whitened when the collection learned a
whitening), `path` and `meta` (the metadata columns, typed: milvus_filters.py). Filters become a
Milvus expression applied inside the search; paging is the engine's offset; `ids` lists the
collection for a duplicates pass (serving/engine_duplicates.py).

Every call has a timeout. A refused connection, a timeout or an engine that is starting raises
`EngineUnavailable` (503 with Retry-After, naming the engine); the client is made again on the
next call, so the service recovers by itself when the engine returns (milvus_client.py). Searches read with
Milvus's "Bounded" consistency by default: a write one replica acknowledged is seen by every
replica's searches within Milvus's graceful time (5 s by default); SBI_MILVUS_CONSISTENCY=Strong
makes it the next search, at the cost of waiting for the engine's time tick on every call.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from search_by_image.catalog.filters import Condition
from search_by_image.catalog.metadata import Kind
from search_by_image.errors import EngineFailed, EngineUnavailable
from search_by_image.index import milvus_filters
from search_by_image.index.milvus_client import CALL_TIMEOUT_S, HEALTH_TIMEOUT_S, MilvusConnection
from search_by_image.index.milvus_index import collection_name, index_params
from search_by_image.index.vector_storage import Hits, StorageAddress, StorageHealth
from search_by_image.lazy_imports import LazyModule

if TYPE_CHECKING:
    import pymilvus
else:
    pymilvus = LazyModule("pymilvus")

#: rows per insert (under gRPC's 64 MiB message at 1280-d float32); the longest path stored
BATCH, MAX_PATH = 2000, 4096
#: query size Milvus accepts for one search (topk + offset)
MAX_WINDOW = 16384


class MilvusStorage(MilvusConnection):
    """A collection's rows in one Milvus collection (see the module's docstring)."""

    def __init__(
        self,
        address: StorageAddress,
        name: str,
        kinds: Mapping[str, Kind] | None = None,
        consistency: str = "Strong",
        timeout: float = CALL_TIMEOUT_S,
        uri: str | None = None,
    ):
        super().__init__(address, collection_name(name), timeout, uri)
        self.kinds: dict[str, Kind] = dict(kinds or {})
        self.consistency = consistency
        self.nprobe = 32

    # -- the collection -------------------------------------------------------------------------

    def create(self, dim: int, index_type: str, count: int, nprobe: int | None = None) -> None:
        """Create the collection (if absent) with its index, and load it for searching."""
        index, search = index_params(index_type, count)
        self.nprobe = nprobe or search.get("nprobe", 32)
        DataType = pymilvus.DataType
        with self._call() as client:
            if not client.has_collection(self.collection, timeout=self.timeout):
                schema = client.create_schema(auto_id=False, description="search-by-image collection")
                schema.add_field("id", DataType.INT64, is_primary=True)
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
                schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
                schema.add_field(milvus_filters.META_FIELD, DataType.JSON)
                params = client.prepare_index_params()
                params.add_index("vector", metric_type="IP", **index)
                client.create_collection(
                    self.collection,
                    schema=schema,
                    index_params=params,
                    consistency_level=self.consistency,
                    timeout=self.timeout,
                )
            client.load_collection(self.collection, timeout=max(self.timeout, 60))

    # -- VectorStorage ----------------------------------------------------------------------------

    def add(
        self,
        ids: Sequence[int],
        vectors: np.ndarray,
        paths: Sequence[str],
        metadata: Sequence[Mapping[str, Any]],
        replace: bool = False,
    ) -> None:
        """Rows stored; with `replace` those of the same ids replaced (Milvus's upsert: an insert
        of an id already there would store it twice)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        with self._call() as client:
            write = client.upsert if replace else client.insert
            for start in range(0, len(ids), BATCH):
                rows = [
                    {"id": int(i), "vector": v, "path": p, milvus_filters.META_FIELD: self._typed(m)}
                    for i, v, p, m in zip(
                        ids[start : start + BATCH],
                        vectors[start : start + BATCH],
                        paths[start : start + BATCH],
                        metadata[start : start + BATCH],
                    )
                ]
                write(self.collection, rows, timeout=self.timeout)

    def _typed(self, row: Mapping[str, Any]) -> dict[str, Any]:
        typed = {c: milvus_filters.stored_value(v, self.kinds.get(c, "text")) for c, v in row.items()}
        return {c: v for c, v in typed.items() if v is not None}

    def delete(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._call() as client:
            client.delete(self.collection, ids=[int(i) for i in ids], timeout=self.timeout)

    def count(self, where: Mapping[str, Condition] | None = None, timeout: float | None = None) -> int:
        """Images stored, or those `where` lets through."""
        with self._call() as client:
            found = client.query(
                self.collection,
                filter=milvus_filters.expression(where or {}, self.kinds),
                output_fields=["count(*)"],
                consistency_level=self.consistency,
                timeout=timeout or self.timeout,
            )
        return int(found[0]["count(*)"])

    def id_of_path(self, path: str) -> int | None:
        with self._call() as client:
            found = client.query(
                self.collection,
                filter=f"path == {milvus_filters.literal(path)}",
                output_fields=["id"],
                limit=1,
                consistency_level=self.consistency,
                timeout=self.timeout,
            )
        return int(found[0]["id"]) if found else None

    def search(
        self,
        queries: np.ndarray,
        k: int,
        where: Mapping[str, Condition] | None = None,
        offset: int = 0,
        exclude: Sequence[int] = (),
        timeout: float | None = None,
    ) -> Hits:
        return self.search_with_paths(queries, k, where, offset, exclude, timeout)[0]

    def search_with_paths(
        self,
        queries: np.ndarray,
        k: int,
        where: Mapping[str, Condition] | None = None,
        offset: int = 0,
        exclude: Sequence[int] = (),
        timeout: float | None = None,
    ) -> tuple[Hits, dict[int, str]]:
        """`search`, and the path of every id found (one round trip)."""
        if k <= 0 or not len(queries):
            return [[] for _ in queries], {}
        expression = milvus_filters.both(
            milvus_filters.expression(where or {}, self.kinds), milvus_filters.excluding(list(exclude))
        )
        k = min(k, MAX_WINDOW - offset)
        with self._call() as client:
            found = client.search(
                self.collection,
                np.asarray(queries, dtype=np.float32).tolist(),
                filter=expression,
                limit=k,
                offset=offset,
                output_fields=["path"],
                search_params={"metric_type": "IP", "params": {"nprobe": self.nprobe, "ef": max(128, k)}},
                consistency_level=self.consistency,
                timeout=timeout or self.timeout,
            )
        hits = [[(int(hit["id"]), float(hit["distance"])) for hit in row] for row in found]
        paths = {int(hit["id"]): hit["entity"]["path"] for row in found for hit in row}
        return hits, paths

    def rows(self, ids: Sequence[int], fields: Sequence[str]) -> dict[int, dict[str, Any]]:
        """These ids' stored fields (unknown ids left out)."""
        if not ids:
            return {}
        with self._call() as client:
            found = client.get(
                self.collection,
                ids=[int(i) for i in ids],
                output_fields=list(fields),
                consistency_level=self.consistency,
                timeout=self.timeout,
            )
        return {int(row["id"]): row for row in found}

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        return {i: np.asarray(row["vector"], np.float32) for i, row in self.rows(ids, ["vector"]).items()}

    def ids(self, where: Mapping[str, Condition] | None = None, timeout: float | None = None) -> np.ndarray:
        """Every stored id (those `where` lets through), sorted: MAX_WINDOW ids a round trip,
        each within `timeout` (default: the storage's)."""
        found: list[int] = []
        with self._call() as client:
            pages = client.query_iterator(
                self.collection,
                batch_size=MAX_WINDOW,
                filter=milvus_filters.expression(where or {}, self.kinds),
                output_fields=["id"],
                consistency_level=self.consistency,
                timeout=timeout or self.timeout,
            )
            try:
                while page := pages.next():
                    found.extend(int(row["id"]) for row in page)
            finally:
                pages.close()
        return np.unique(np.asarray(found, np.int64))

    def strong(self) -> MilvusStorage:
        """This storage reading with Strong consistency: every write acknowledged so far is seen
        (a listing that must not miss one; each call waits for the engine's time tick)."""
        view = copy.copy(self)
        view.consistency = "Strong"
        return view

    def health(self) -> StorageHealth:
        try:
            count = self.count(timeout=HEALTH_TIMEOUT_S)
        except (EngineUnavailable, EngineFailed) as exc:
            return StorageHealth("milvus", str(self.address), False, None, str(exc))
        return StorageHealth("milvus", str(self.address), True, count)
