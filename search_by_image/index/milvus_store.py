"""A collection's vectors in Milvus: the `VectorStorage` several service replicas share.

One Milvus collection per served collection (`sbi_<name>`), with fields `id` (our image id, the
primary key), `vector` (the searchable descriptor: whitened when the collection learned a
whitening), `path` and `meta` (the metadata columns, typed: milvus_filters.py). Filters become a
Milvus expression applied inside the search; paging is the engine's offset; neighbours for the
duplicates page are the engine's k-NN of each stored vector, in batches.

Every call has a timeout. A refused connection, a timeout or an engine that is starting raises
`EngineUnavailable` (503 with Retry-After, naming the engine); the client is made again on the
next call, so the service recovers by itself when the engine returns. Searches read with
Milvus's "Strong" consistency by default: a write one replica acknowledged is seen by every
replica's next search (SBI_MILVUS_CONSISTENCY=Bounded trades that for a few ms, with writes
seen within Milvus's graceful time, 5 s by default).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from search_by_image.catalog.filters import Condition
from search_by_image.catalog.metadata import Kind
from search_by_image.errors import EngineFailed, EngineUnavailable
from search_by_image.index import milvus_filters
from search_by_image.index.milvus_index import collection_name, index_params
from search_by_image.index.vector_storage import Hits, StorageAddress, StorageHealth
from search_by_image.lazy_imports import LazyModule

if TYPE_CHECKING:
    import pymilvus
else:
    pymilvus = LazyModule("pymilvus")

#: seconds a call may take (a search, a batch insert), and /health's count, before the engine
#: counts as down
CALL_TIMEOUT_S, HEALTH_TIMEOUT_S = 10.0, 2.0
#: rows per insert (under gRPC's 64 MiB message at 1280-d float32) and ids per neighbour search
BATCH, MAX_PATH = 2000, 4096
#: query size Milvus accepts for one search (topk + offset)
MAX_WINDOW = 16384
#: our own subchannels, retried every second at most: gRPC's shared pool keeps a refused address
#: failing for up to two minutes after the engine is back
GRPC_OPTIONS = {
    "grpc.use_local_subchannel_pool": 1,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 1000,
}
_CONNECTION_WORDS = re.compile(r"unavailable|deadline|connect|timeout|timed out|not ready|closed", re.I)


class MilvusStorage:
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
        self.address = address
        #: where the client connects: the address, or a milvus-lite file (tests, one process)
        self.uri = uri or address.uri
        self.collection = collection_name(name)
        self.kinds: dict[str, Kind] = dict(kinds or {})
        self.consistency = consistency
        self.timeout = timeout
        self.nprobe = 32
        self._client: pymilvus.MilvusClient | None = None
        self._lock = threading.Lock()

    # -- the connection -------------------------------------------------------------------------

    @property
    def engine(self) -> str:
        return f"Milvus at {self.address.host}:{self.address.port}"

    @contextlib.contextmanager
    def _call(self) -> Iterator[pymilvus.MilvusClient]:
        """The client, with any failure to reach the engine as EngineUnavailable (the client is
        dropped, so the next call connects again)."""
        try:
            with self._lock:
                if self._client is None:
                    self._client = pymilvus.MilvusClient(
                        uri=self.uri, timeout=self.timeout, dedicated=True, grpc_options=GRPC_OPTIONS
                    )
                client = self._client
            yield client
        except Exception as exc:
            if isinstance(exc, (EngineUnavailable, EngineFailed)):
                raise
            if _unreachable(exc):
                self._drop()
                raise EngineUnavailable(self.engine, _reason(exc)) from exc
            if "not loaded" in _reason(exc).lower():  # an engine restarted without its load state
                self._load_quietly()
                raise EngineUnavailable(self.engine, "loading the collection") from exc
            if isinstance(exc, pymilvus.exceptions.MilvusException):
                raise EngineFailed(f"{self.engine} refused the request: {_reason(exc)}") from exc
            raise

    def _drop(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    close = _drop

    def _load_quietly(self) -> None:
        with contextlib.suppress(Exception), self._lock:
            if self._client is not None:
                self._client.load_collection(self.collection, timeout=self.timeout)

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
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        with self._call() as client:
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
                client.insert(self.collection, rows, timeout=self.timeout)

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
    ) -> Hits:
        return self.search_with_paths(queries, k, where, offset, exclude)[0]

    def search_with_paths(
        self,
        queries: np.ndarray,
        k: int,
        where: Mapping[str, Condition] | None = None,
        offset: int = 0,
        exclude: Sequence[int] = (),
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
                timeout=self.timeout,
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

    def neighbours(self, ids: Sequence[int], k: int) -> Hits:
        found: Hits = []
        for start in range(0, len(ids), BATCH):
            batch = list(ids[start : start + BATCH])
            stored = self.vectors(batch)
            present = [i for i in batch if i in stored]
            queries = np.stack([stored[i] for i in present]) if present else np.zeros((0, 1), np.float32)
            hits = iter(self.search(queries, k + 1) if present else [])
            for image_id in batch:
                row = next(hits) if image_id in stored else []
                found.append([(i, s) for i, s in row if i != image_id][:k])
        return found

    def health(self) -> StorageHealth:
        try:
            count = self.count(timeout=HEALTH_TIMEOUT_S)
        except (EngineUnavailable, EngineFailed) as exc:
            return StorageHealth("milvus", str(self.address), False, None, str(exc))
        return StorageHealth("milvus", str(self.address), True, count)


def _unreachable(exc: BaseException) -> bool:
    """An error of reaching the engine (down, starting, too slow), not of the request itself."""
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    grpc = type(exc).__module__.startswith("grpc")
    return grpc or bool(_CONNECTION_WORDS.search(_reason(exc)))


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
