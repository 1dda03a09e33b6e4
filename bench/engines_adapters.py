"""The engines bench/engines.py compares, each behind the same few calls.

Each adapter opens (or starts) its engine in a fresh folder, and offers insert, ready (index built
and searchable), search (ids, optionally among one category), delete, the time a write takes to be
seen by a second client, the memory the engine holds, and close.
"""

from __future__ import annotations

import functools
import time
from typing import Protocol

import numpy as np
import psutil

NLIST, NPROBE = 1024, 32
BATCH = 2000
#: how long a write may take to be seen before the bench gives up on it
VISIBLE_WITHIN_S = 30.0


class Engine(Protocol):
    notes: list[str]

    def insert(self, ids: np.ndarray, vectors: np.ndarray, categories: np.ndarray) -> None: ...
    def ready(self) -> None: ...
    def search(self, query: np.ndarray, k: int, category: int | None) -> list[int]: ...
    def delete(self, ids: list[int]) -> None: ...
    def visibility_ms(self, vector: np.ndarray, new_id: int) -> str: ...
    def rss(self) -> int | None: ...
    def close(self) -> None: ...


def _wait_visible(found) -> float:
    started = time.perf_counter()
    while not found():
        if time.perf_counter() - started > VISIBLE_WITHIN_S:
            return float("inf")
        time.sleep(0.005)
    return (time.perf_counter() - started) * 1e3


class Faiss:
    """The embedded default: the product's IVF1024,Flat in this process (no second client)."""

    def __init__(self, folder: str, dim: int):
        import faiss

        self.faiss = faiss
        self.index = faiss.index_factory(dim, f"IVF{NLIST},Flat", faiss.METRIC_INNER_PRODUCT)
        self.notes: list[str] = []

    def insert(self, ids, vectors, categories):
        self.categories = categories
        self.index.train(vectors[: NLIST * 39])
        self.index.add_with_ids(vectors, ids)

    def ready(self):
        self.index.nprobe = NPROBE

    def search(self, query, k, category):
        params = None
        if category is not None:
            allowed = np.flatnonzero(self.categories == category).astype(np.int64)
            selector = self.faiss.IDSelectorBatch(allowed)
            params = self.faiss.SearchParametersIVF(sel=selector, nprobe=NPROBE)
        _, ids = self.index.search(query[None], k, params=params)
        return [int(i) for i in ids[0] if i >= 0]

    def delete(self, ids):
        self.index.remove_ids(np.asarray(ids, np.int64))

    def visibility_ms(self, vector, new_id):
        return "n/a: one process"

    def rss(self):
        return None

    def close(self):
        pass


class Milvus:
    """Milvus: `server` starts the real Milvus 2.3 standalone (the `milvus` package) and talks to
    it over gRPC; otherwise milvus-lite in a local file."""

    def __init__(self, folder: str, dim: int, server: bool = True):
        from pymilvus import DataType, MilvusClient

        self.notes = []
        self.server = None
        if server:
            from milvus import MilvusServer

            self.server = MilvusServer()
            self.server.set_base_dir(f"{folder}/milvus")
            self.server.listen_port = 19541
            self.server.start()
            uri = f"http://127.0.0.1:{self.server.listen_port}"
        else:
            uri = f"{folder}/lite.db"
        self.uri = uri
        self.client = MilvusClient(uri=uri, timeout=60)
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("cat", DataType.INT64)
        self.client.create_collection("bench", schema=schema, consistency_level="Bounded")

    def insert(self, ids, vectors, categories):
        for start in range(0, len(ids), BATCH):
            stop = start + BATCH
            rows = [
                {"id": int(i), "vector": v, "cat": int(c)}
                for i, v, c in zip(ids[start:stop], vectors[start:stop], categories[start:stop])
            ]
            self.client.insert("bench", rows)
        self.client.flush("bench")

    def ready(self):
        params = self.client.prepare_index_params()
        try:
            params.add_index("vector", index_type="IVF_FLAT", metric_type="IP", params={"nlist": NLIST})
            self.client.create_index("bench", params)
        except Exception as exc:  # milvus-lite builds fewer index kinds
            self.notes.append(f"IVF_FLAT refused ({type(exc).__name__}); FLAT")
            params = self.client.prepare_index_params()
            params.add_index("vector", index_type="FLAT", metric_type="IP")
            self.client.create_index("bench", params)
        self.client.load_collection("bench")

    def search(self, query, k, category):
        found = self.client.search(
            "bench",
            [query.tolist()],
            limit=k,
            filter="" if category is None else f"cat == {int(category)}",
            search_params={"metric_type": "IP", "params": {"nprobe": NPROBE}},
        )
        return [int(hit["id"]) for hit in found[0]]

    def delete(self, ids):
        self.client.delete("bench", ids=ids)

    def visibility_ms(self, vector, new_id):
        from pymilvus import MilvusClient

        if self.server is None:
            return "n/a: the file is one process's"
        other = MilvusClient(uri=self.uri, timeout=60)  # a second connection, as another replica's

        def seen(expression: str, level: str) -> bool:
            return bool(other.query("bench", filter=expression, consistency_level=level))

        timings = []
        for level, offset in (("Strong", 1), ("Bounded", 2)):
            row = {"id": new_id + offset, "vector": vector.tolist(), "cat": 0}
            self.client.insert("bench", [row])
            wait = _wait_visible(functools.partial(seen, f"id == {new_id + offset}", level))
            timings.append(f"{level} {wait:.0f}")
        gone = f"id == {new_id + 1}"
        self.client.delete("bench", filter=gone)
        timings.append(f"delete {_wait_visible(lambda: not seen(gone, 'Strong')):.0f}")
        other.close()
        return ", ".join(timings)

    def rss(self):
        if self.server is None:
            return None
        process = psutil.Process(self.server.server_proc.pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])

    def close(self):
        self.client.close()
        if self.server is not None:
            self.server.stop()


class MilvusLite(Milvus):
    def __init__(self, folder: str, dim: int):
        super().__init__(folder, dim, server=False)


class QdrantLocal:
    """qdrant-client's local mode: the client's own Python engine (a scan), one process."""

    def __init__(self, folder: str, dim: int):
        from qdrant_client import QdrantClient, models

        self.models = models
        self.client = QdrantClient(path=f"{folder}/qdrant")
        self.client.create_collection(
            "bench", vectors_config=models.VectorParams(size=dim, distance=models.Distance.DOT)
        )
        self.notes = ["local mode scans; the server's HNSW is not installable here"]
        self.folder = folder

    def insert(self, ids, vectors, categories):
        for start in range(0, len(ids), BATCH):
            stop = start + BATCH
            self.client.upload_collection(
                "bench",
                vectors[start:stop],
                payload=[{"cat": int(c)} for c in categories[start:stop]],
                ids=[int(i) for i in ids[start:stop]],
            )

    def ready(self):
        pass

    def _filter(self, category):
        m = self.models
        if category is None:
            return None
        return m.Filter(must=[m.FieldCondition(key="cat", match=m.MatchValue(value=int(category)))])

    def search(self, query, k, category):
        found = self.client.query_points("bench", query=query, limit=k, query_filter=self._filter(category))
        return [int(p.id) for p in found.points]

    def delete(self, ids):
        self.client.delete("bench", points_selector=self.models.PointIdsList(points=ids))

    def visibility_ms(self, vector, new_id):
        from qdrant_client import QdrantClient

        try:
            QdrantClient(path=f"{self.folder}/qdrant")
        except Exception as exc:
            return f"n/a: {type(exc).__name__} (one process holds the folder)"
        return "opened twice"

    def rss(self):
        return None

    def close(self):
        self.client.close()


class QdrantEdge:
    """qdrant-edge-py: Qdrant's engine (segments, HNSW, payload filters) inside this process."""

    def __init__(self, folder: str, dim: int):
        import qdrant_edge as q

        self.q = q
        self.path = f"{folder}/edge"
        config = q.EdgeConfig(vectors=q.EdgeVectorParams(size=dim, distance=q.Distance.Dot))
        self.shard = q.EdgeShard.create(self.path, config)
        self.notes = []

    def insert(self, ids, vectors, categories):
        q = self.q
        for start in range(0, len(ids), BATCH):
            stop = start + BATCH
            points = [
                q.Point(int(i), v.tolist(), {"cat": int(c)})
                for i, v, c in zip(ids[start:stop], vectors[start:stop], categories[start:stop])
            ]
            self.shard.update(q.UpdateOperation.upsert_points(points))

    def ready(self):
        started = time.perf_counter()
        self.shard.optimize()
        self.notes.append(f"HNSW optimize {time.perf_counter() - started:.0f} s")

    def search(self, query, k, category):
        q = self.q
        flt = None
        if category is not None:
            flt = q.Filter(must=[q.FieldCondition(key="cat", match=q.MatchValue(int(category)))])
        found = self.shard.search(q.SearchRequest(query=q.Query.Nearest(query.tolist()), limit=k, filter=flt))
        return [int(p.id) for p in found]

    def delete(self, ids):
        self.shard.update(self.q.UpdateOperation.delete_points(ids))

    def visibility_ms(self, vector, new_id):
        return "n/a: in-process only"

    def rss(self):
        return None

    def close(self):
        self.shard.close()


ADAPTERS = {
    "faiss": Faiss,
    "milvus": Milvus,
    "milvus-lite": MilvusLite,
    "qdrant-edge": QdrantEdge,
    "qdrant-local": QdrantLocal,
}
