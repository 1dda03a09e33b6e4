"""How a whole pass (the duplicates') searches every image of a collection for its nearest.

With the collection's own index, a batch of queries at a time; but exactly instead, every vector
against all (faiss.knn: one matrix product a batch), where the index is IVF with a tuned nprobe
that probes at least one list in PROBED_FOR_EXACT, while that costs at most EXACT_PASS_COST
multiply-adds. IVF scans its probed lists query by query, a vector scanned costing several times
what it costs in the product: 100k composed mosaics tuned to nprobe 512 of 1,024 lists took
13 s a batch of 1,024 queries, the exact product 3 s of CPU (bench/README.md, "The duplicates
page on real photos"). The exact scores are the index's own (the same searchable vectors, inner
product), and no near image is lost to an unprobed list.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import faiss
import numpy as np

from search_by_image.index.live_store import LiveStore

#: An index probing at least one of this many of its lists is searched exactly instead.
PROBED_FOR_EXACT = 8
#: 1e13 multiply-adds: 140k images at 512-d, all against all; the vectors held meanwhile, 290 MB.
EXACT_PASS_COST = 1e13

Hits = list[list[tuple[int, float]]]
#: search(start, batch, k): the (id, score) hits of the images ids[start:start + len(batch)]
Search = Callable[[int, np.ndarray, int], Hits]


def nearest_search(store: LiveStore, ids: np.ndarray, batch: int) -> Search:
    """How to search each of `ids` (every live id, in order) for its k nearest: by the index,
    or exactly over every image's searchable vector (read `batch` at a time, held meanwhile)."""
    dims = store.whitening.dims if store.whitening is not None else store.manifest.embedder.dim
    lists = re.match(r"IVF(\d+)", store.manifest.index_type)
    probed = lists is not None and store.manifest.nprobe * PROBED_FOR_EXACT >= int(lists[1])
    if not probed or len(ids) ** 2 * dims > EXACT_PASS_COST:
        return lambda start, queries, k: store.search(store.vectors(queries), k)
    read = [store.searchable(store.vectors(ids[s : s + batch])) for s in range(0, len(ids), batch)]
    vectors = np.ascontiguousarray(np.concatenate(read), np.float32)

    def exact(start: int, queries: np.ndarray, k: int) -> Hits:
        scores, rows = faiss.knn(
            vectors[start : start + len(queries)], vectors, k, faiss.METRIC_INNER_PRODUCT
        )
        return [
            [(int(ids[r]), float(s)) for r, s in zip(found, score) if r >= 0]
            for found, score in zip(rows, scores)
        ]

    return exact
