"""A filtered IVF search probes enough lists to meet k allowed images: a selective filter is
answered inside FAISS, not by the exact fallback that reads every allowed descriptor."""

import numpy as np
from stores import clustered_ivf_store

from search_by_image.index.selection import filtered_nprobe
from search_by_image.index.store import IndexStore


def ivf_store() -> tuple[IndexStore, np.ndarray]:
    return clustered_ivf_store(6000, seed=5, spread=0.3)


def test_a_selective_filter_probes_more_lists_and_never_more_than_all():
    store, _ = ivf_store()
    nlist, nprobe = store.index.nlist, store.manifest.nprobe
    assert filtered_nprobe(store, None, 10) == nprobe  # no filter: as tuned
    assert filtered_nprobe(store, np.arange(6000), 10) == nprobe  # everything allowed
    assert filtered_nprobe(store, np.arange(600), 10) == max(nprobe, -(-20 * nlist // 600))  # 10%
    assert filtered_nprobe(store, np.arange(3), 10) == nlist


def test_a_selective_filter_finds_k_inside_faiss_with_the_recall_of_an_unfiltered_one(monkeypatch):
    store, features = ivf_store()
    allowed = np.arange(0, 6000, 50)  # 2%
    monkeypatch.setattr(store, "_exact_among", lambda *a: (_ for _ in ()).throw(AssertionError("fallback")))
    found = []
    for query in range(0, 6000, 300):
        hits = store.search(features[[query]], 10, allowed)[0]
        exact = allowed[np.argsort(-(features[allowed] @ features[query]))[:10]]
        assert len(hits) == 10
        found.append(len({i for i, _ in hits} & set(exact.tolist())) / 10)
    assert np.mean(found) >= 0.95
