"""A collection's vectors in Milvus, through milvus-lite (Milvus's protocol and engine in one
local process: the multi-process server is tests/system/test_milvus_replicas.py): filters applied
inside the search, paging, more like this, neighbours, deletes; a down engine is a 503 naming it."""

import time

import numpy as np
import pytest

from search_by_image.errors import EngineUnavailable
from search_by_image.index.milvus_store import MilvusStorage
from search_by_image.index.vector_storage import StorageAddress

pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (pip install milvus-lite)")

DIM = 64
KINDS = {"category": "text", "width": "number"}
ADDRESS = StorageAddress("milvus", "127.0.0.1", 19530)


def rows(count: int) -> np.ndarray:
    vectors = np.random.default_rng(3).normal(size=(count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    folder = tmp_path_factory.mktemp("milvus")
    store = MilvusStorage(ADDRESS, "holidays", KINDS, uri=str(folder / "lite.db"))
    store.create(DIM, "Flat", 200)
    vectors = rows(200)
    metadata = [{"category": "cats" if i % 10 == 0 else "dogs", "width": i} for i in range(200)]
    store.add(list(range(200)), vectors, [f"img{i}.jpg" for i in range(200)], metadata)
    yield store, vectors
    store.close()


def test_search_finds_each_image_first_and_pages_on(storage):
    store, vectors = storage
    assert store.count() == 200
    (hits,) = store.search(vectors[[42]], 5)
    assert hits[0][0] == 42 and hits[0][1] == pytest.approx(1.0, abs=1e-4)
    (page,) = store.search(vectors[[42]], 2, offset=2)
    assert [i for i, _ in page] == [i for i, _ in hits[2:4]]


def test_filters_are_applied_inside_the_search(storage):
    store, vectors = storage
    (hits,) = store.search(vectors[[42]], 10, {"category": "cats"})
    assert len(hits) == 10 and all(i % 10 == 0 for i, _ in hits)  # 20 cats: k of them come back
    (hits,) = store.search(vectors[[42]], 50, {"category": ["cats", "birds"]})
    assert sorted(i for i, _ in hits) == list(range(0, 200, 10))
    (hits,) = store.search(vectors[[42]], 50, {"width": _range(gte=190)})
    assert sorted(i for i, _ in hits) == list(range(190, 200))
    (hits,) = store.search(vectors[[42]], 5, {"category": 'x" or id >= 0 or meta["category"] == "'})
    assert hits == []


def _range(**bounds):
    from search_by_image.catalog.filters import Range

    return Range(**bounds)


def test_more_like_this_leaves_the_image_out(storage):
    store, vectors = storage
    stored = store.vectors([7, 9999])
    assert list(stored) == [7] and np.allclose(stored[7], vectors[7], atol=1e-6)
    (hits,) = store.search(stored[7][None], 3, exclude=[7])
    assert 7 not in [i for i, _ in hits] and len(hits) == 3
    exact = np.argsort(-(vectors @ vectors[8]))[:5]
    assert [i for i, _ in store.search(vectors[[8]], 5)[0]] == exact.tolist()


def test_ids_lists_every_image_or_those_a_filter_passes(storage, monkeypatch):
    store, _ = storage
    monkeypatch.setattr("search_by_image.index.milvus_store.MAX_WINDOW", 64)  # several pages
    assert store.ids().tolist() == list(range(200))
    assert store.ids({"category": "cats"}).tolist() == list(range(0, 200, 10))


def test_a_delete_is_gone_from_the_next_search(storage):
    store, vectors = storage
    store.add([500], vectors[[3]] * 1.0, ["extra.jpg"], [{"category": "cats"}])
    assert store.search(vectors[[3]], 2)[0][0][0] in (3, 500)
    store.delete([500])
    assert 500 not in [i for i, _ in store.search(vectors[[3]], 5)[0]]
    assert store.health().answers and store.health().count == 200


def test_an_engine_that_does_not_answer_is_a_503_naming_it_quickly():
    store = MilvusStorage(StorageAddress("milvus", "127.0.0.1", 9), "x", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(EngineUnavailable) as caught:
        store.count()
    assert caught.value.status == 503 and "Milvus at 127.0.0.1:9" in str(caught.value)
    assert int(caught.value.headers["Retry-After"]) > 0
    assert time.monotonic() - started < 15
    assert not store.health().answers
