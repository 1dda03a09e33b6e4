"""Device selection: `auto` falls back to the CPU cleanly for the model and for FAISS, an explicit
CUDA request on a machine without it is a clear error, and /health says where things run."""

import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient

from main import create_app
from search_by_image.devices import cuda_available, resolve_device
from search_by_image.index import faiss_device
from search_by_image.index.store import IndexStore

needs_no_gpu = pytest.mark.skipif(
    cuda_available() or faiss_device.gpus() > 0, reason="checks the fallback of a machine without a GPU"
)


@needs_no_gpu
def test_auto_picks_the_cpu_without_cuda():
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"


@needs_no_gpu
def test_asking_for_cuda_without_it_says_so():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda:1")


@needs_no_gpu
def test_faiss_without_gpu_support_searches_on_the_cpu_and_says_why_once(demo_collection, caplog):
    store = IndexStore.load(demo_collection.saved_dir)
    faiss_device._warned = False
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            store.place("cuda")
    assert (store.gpu_index, store.search_device) == (None, "cpu")
    assert sum("no GPU support" in r.getMessage() for r in caplog.records) == 1
    row = store.row_of_path("chelsea.jpg")
    assert store.search(np.asarray(store.features[[row]]), 1)[0][0][0] == int(store.ids[row])
    store.place("auto")
    assert store.search_device == "cpu"


def test_health_reports_where_the_model_and_faiss_run(demo_collection):
    with TestClient(create_app(demo_collection)) as client:
        health = client.get("/health").json()
    assert health["device"].startswith("cuda" if cuda_available() else "cpu")
    assert health["collections"][0]["search_device"].startswith(("cpu", "cuda"))


def test_a_small_collection_is_searched_on_one_thread_and_the_setting_restored(demo_collection, monkeypatch):
    import faiss

    store = IndexStore.load(demo_collection.saved_dir)
    seen = []
    search = store.index.search

    def watched(*args, **kwargs):
        seen.append(faiss.omp_get_max_threads())
        return search(*args, **kwargs)

    monkeypatch.setattr(store.index, "search", watched)
    before = faiss.omp_get_max_threads()
    row = store.row_of_path("chelsea.jpg")
    assert store.search(np.asarray(store.features[[row]]), 1)[0][0][0] == int(store.ids[row])
    assert seen == [1] and faiss.omp_get_max_threads() == before
