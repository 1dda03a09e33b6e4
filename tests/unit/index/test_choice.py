"""The FAISS index a collection gets by its size, and IVF's nprobe tuned on its own vectors."""

import faiss
import numpy as np

from search_by_image.index.choice import (
    FLAT,
    choose_index_type,
    exact_top_k,
    recall_at_k,
    tune_nprobe,
)


def test_exact_while_a_query_is_cheap_ivf_above_compressed_beyond_the_memory_limit():
    assert choose_index_type(19_000, 2048) == FLAT  # 3.9e7 multiply-adds per query
    assert choose_index_type(104_000, 384) == FLAT
    assert choose_index_type(100_000, 2048) == "IVF1024,Flat"  # 4 sqrt(n), a power of two
    assert choose_index_type(1_000_000, 384) == "IVF4096,Flat"
    assert choose_index_type(1_000_000, 2048, memory_limit=2**30) == "IVF4096,SQ8"


def test_lists_get_at_least_39_training_vectors_each_and_too_few_for_two_stay_exact():
    assert choose_index_type(4000, 64, flat_max_cost=1e5) == "IVF102,Flat"  # 256 capped at 4000 // 39
    assert choose_index_type(70, 2048, flat_max_cost=1) == FLAT  # 70 // 39 = 1 list


def clustered(count: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 64, count)] + 0.3 * rng.normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_exact_top_k_ranks_by_inner_product():
    vectors = clustered(500, 32)
    top = exact_top_k(vectors, vectors[:20], 5)
    assert top.shape == (20, 5) and (top[:, 0] == np.arange(20)).all()  # each finds itself first
    scores = np.take_along_axis(vectors[:20] @ vectors.T, top, axis=1)
    assert (np.diff(scores, axis=1) <= 0).all()
    assert recall_at_k(top, top) == 1.0 and recall_at_k(top[:, :1], top[:, :2]) == 0.5


def test_nprobe_is_raised_until_the_recall_target_holds_then_doubled_once():
    vectors = clustered(8000, 32)
    ids = np.arange(len(vectors), dtype=np.int64)
    index = faiss.index_factory(32, "IVF64,Flat", faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add_with_ids(vectors, ids)
    nprobe, recall = tune_nprobe(index, vectors, ids, target=0.95, queries=200)
    assert recall >= 0.95 and nprobe in (2, 4, 8, 16, 32, 64)
    lower, lower_recall = tune_nprobe(index, vectors, ids, target=0.0, queries=200)
    assert lower == 2 and lower_recall <= recall  # reached at nprobe 1, then one doubling


def test_an_exact_index_needs_no_tuning():
    vectors = clustered(100, 16)
    index = faiss.index_factory(16, FLAT, faiss.METRIC_INNER_PRODUCT)
    assert tune_nprobe(index, vectors, np.arange(100, dtype=np.int64)) == (0, 1.0)
