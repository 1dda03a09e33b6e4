"""A whole pass's search for each image's nearest: exact over an IVF index while cheap, with the
index's own scores; by the index otherwise."""

import numpy as np
import pytest
from stores import clustered_ivf_store

from search_by_image.index import pass_search


@pytest.fixture(scope="module")
def ivf_store():
    """4,000 clustered 64-d vectors in an IVF index tuned to its recall target, as a large
    collection gets (a few near images then sit in lists the search does not probe)."""
    store, features = clustered_ivf_store(4000, seed=21, spread=0.6)
    assert store.manifest.index_type == "IVF102,Flat" and 1 <= store.manifest.nprobe < 102  # not every list
    return store, features


def exact_nearest(features, rows, k):
    similarity = features[rows] @ features.T
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def test_a_pass_over_an_ivf_index_finds_each_images_exact_nearest_with_the_index_scores(
    ivf_store, monkeypatch
):
    store, features = ivf_store
    monkeypatch.setattr(pass_search, "PROBED_FOR_EXACT", 10**6)  # as if it probed many lists
    monkeypatch.setattr(store, "search", None)  # not the index's lists: every vector
    ids = np.asarray(store.ids, np.int64)
    search = pass_search.nearest_search(store, ids, batch=512)
    hits = search(100, ids[100:356], 11)
    expected = exact_nearest(features, np.arange(100, 356), 11)
    found = np.array([[i for i, _ in row] for row in hits])
    assert (found[:, 1:] == ids[expected[:, 1:]]).mean() > 0.99  # ties aside
    for row, query in zip(hits[:20], range(100, 120)):
        for image_id, score in row:
            assert score == pytest.approx(float(features[query] @ features[image_id]), abs=1e-4)


@pytest.mark.parametrize("probed_for_exact, budget", [(10**6, 1.0), (1, 1e13)])
def test_an_index_probing_few_lists_or_past_the_budget_is_searched_as_it_is(
    ivf_store, monkeypatch, probed_for_exact, budget
):
    store, features = ivf_store
    monkeypatch.setattr(pass_search, "PROBED_FOR_EXACT", probed_for_exact)
    monkeypatch.setattr(pass_search, "EXACT_PASS_COST", budget)
    ids = np.asarray(store.ids, np.int64)
    hits = pass_search.nearest_search(store, ids, batch=512)(0, ids[:50], 5)
    assert hits == store.search(features[:50], 5)
