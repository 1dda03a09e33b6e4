"""Which FAISS index a collection gets, by its size: exact while it is cheap, IVF above.

Pure functions, numpy in and out, in the spirit of autofaiss: the factory string is chosen from
the collection size and dimension, and IVF's `nprobe` is tuned on the collection's own vectors
until recall@10 against exact search reaches the target.

Why these limits (figures: bench/README.md, the FAISS tables and "Figures behind the code's
choices"; bench/speed.py --only faiss):
- an exact (Flat) inner-product scan costs time in proportion to multiply-adds per query, so
  FLAT_MAX_COST = 4e7 keeps an exact search near 10 ms on the project's 2-core machine: 78k
  images with the default 512-d whitening (104k at 384-d), 19.5k with raw 2048-d features.
- above that, IVF with nlist = 4 sqrt(n) (faiss's guideline is 4 to 16 sqrt(n)) finds nearly all
  of the exact top 10 at a small nprobe in a fraction of a millisecond. Real descriptors are less
  tidy than synthetic clusters, so `tune_nprobe` raises nprobe until the recall target holds on
  the collection's own vectors.
- HNSW, as fast, was left out: it cannot remove vectors, and live deletes need that.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

FLAT = "IDMap2,Flat"
FLAT_MAX_COST = 4e7
#: faiss warns below 39 training points per centroid; k-means needs them to place the centroids.
MIN_POINTS_PER_LIST = 39
TARGET_RECALL = 0.95
#: float32 vectors beyond this many bytes get compressed codes (SQ8); SBI_INDEX_MEMORY_MB sets it.
DEFAULT_MEMORY_LIMIT = 4 * 2**30
RECALL_K = 10
TUNING_QUERIES = 500


def choose_index_type(
    count: int,
    dim: int,
    flat_max_cost: float = FLAT_MAX_COST,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
) -> str:
    """The factory string for `count` vectors of `dim` dimensions (see the module docstring).

    Vectors that would not fit `memory_limit` bytes as float32 are stored as 8-bit scalars (SQ8,
    4x smaller, for a few points of recall@10: bench/README.md, FAISS tables).
    """
    if count * dim <= flat_max_cost:
        return FLAT
    lists = 2 ** round(math.log2(4 * math.sqrt(count)))
    lists = min(lists, count // MIN_POINTS_PER_LIST)
    if lists < 2:
        return FLAT
    codes = "SQ8" if count * dim * 4 > memory_limit else "Flat"
    return f"IVF{lists},{codes}"


def search_params(index: faiss.Index, nprobe: int | None, selector=None) -> faiss.SearchParameters:
    # faiss' Python layer takes the parameters' fields as keywords; its SWIG stubs do not say so
    if faiss.try_extract_index_ivf(index) is not None:
        return faiss.SearchParametersIVF(nprobe=nprobe or 1, sel=selector)  # type: ignore[call-arg]
    return faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the `k` best inner products per query, by brute force, in query blocks
    that keep the score matrix near 80 MB."""
    k = min(k, len(vectors))
    block = max(1, 20_000_000 // max(len(vectors), 1))
    rows = []
    for start in range(0, len(queries), block):
        scores = queries[start : start + block] @ vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        rows.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(rows) if rows else np.empty((0, k), np.int64)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the exact top-k that the approximate top-k contains."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def _without_self(rows: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """Each row's first k entries other than the query's own (it always finds itself)."""
    return np.array([[x for x in row if x != me][:k] for row, me in zip(rows, own)])


def tune_nprobe(
    index: faiss.Index,
    vectors: np.ndarray,
    ids: np.ndarray,
    target: float = TARGET_RECALL,
    k: int = RECALL_K,
    queries: int = TUNING_QUERIES,
    seed: int = 0,
) -> tuple[int, float]:
    """A power-of-two nprobe with recall@k safely above `target`, and its recall.

    Queries are a sample of the collection's own vectors with each one's self-match left out
    (a vector always finds itself in its own list). Even so they are a little easier than fresh
    queries: at 1M vectors the nprobe that reached 0.95 on them gave 0.94 on held-out ones
    (bench/speed.py faiss). So the nprobe returned is one doubling past the first that reaches
    the target; a doubling costs a fraction of a millisecond at these list sizes. Flat indexes
    need no tuning: (0, 1.0).
    """
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return 0, 1.0
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=min(queries, len(vectors)), replace=False)
    sample, own = vectors[rows], ids[rows]
    truth = _without_self(ids[exact_top_k(vectors, sample, k + 1)], own, k)
    nprobe, reached = 1, False
    while True:
        _, found = index.search(sample, k + 1, params=faiss.SearchParametersIVF(nprobe=nprobe))  # type: ignore[call-arg]
        recall = recall_at_k(_without_self(found, own, k), truth)
        if reached or nprobe >= ivf.nlist:
            return nprobe, recall
        reached = recall >= target
        nprobe = min(nprobe * 2, ivf.nlist)
