"""Speed, faiss: `python -m bench.speed --only faiss`.

Search time and recall@10 against exact search for Flat, HNSW and IVF indexes, and for the
index the indexer picks by collection size (index/choice.py, nprobe tuned).

Timings are printed, never asserted.
"""

from __future__ import annotations

import time

import numpy as np

from bench.tables import table
from search_by_image.index.build import build_index
from search_by_image.index.choice import choose_index_type, recall_at_k, search_params, tune_nprobe


def clustered_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors near 1,000 random centres: a crude stand-in for real descriptor clusters.

    Uniform random vectors in 2048-d have no neighbourhood structure at all, which makes every
    approximate index look worse than on real descriptors.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    vectors = centres[rng.integers(0, 1000, count)] + 0.7 * rng.standard_normal(
        (count, dim), dtype=np.float32
    )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def one_at_a_time_ms(index, queries: np.ndarray, params=None) -> float:
    """Latency of single-query searches, as the service runs them (no batching across users)."""
    started = time.perf_counter()
    for row in range(len(queries)):
        index.search(queries[row : row + 1], 10, params=params)
    return (time.perf_counter() - started) / len(queries) * 1e3


def bench_faiss(args) -> None:
    import faiss

    dim, queries = args.faiss_dim, 200
    rows = []
    for count in args.faiss_sizes:
        print(f"faiss: building indexes over {count} vectors", flush=True)
        # queries from the same clusters as the base, held out of it: like real queries, which
        # look like the collection (queries from other centres have no true neighbours at all)
        base, query = np.split(clustered_vectors(count + queries, dim, seed=1), [count])
        exact = faiss.index_factory(dim, "Flat", faiss.METRIC_INNER_PRODUCT)
        exact.add(base)
        _, truth = exact.search(query, 10)
        flat_ms = one_at_a_time_ms(exact, query)
        rows.append(
            [count, "Flat", 0.0, flat_ms, "1.000", round(faiss.serialize_index(exact).nbytes / count)]
        )
        lists = max(16, int(4 * count**0.5))
        variants = (
            ("HNSW32", "efSearch", (64, 128)),
            (f"IVF{lists},Flat", "nprobe", (8, 32)),
            (f"IVF{lists},SQ8", "nprobe", (32,)),
        )
        for factory, knob, values in variants if args.faiss_variants == "all" else ():
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
            started = time.perf_counter()
            if not index.is_trained:
                index.train(base[: min(count, 50 * lists)])
            index.add(base)
            build = time.perf_counter() - started
            per_vector = round(faiss.serialize_index(index).nbytes / count)
            for value in values:
                faiss.ParameterSpace().set_index_parameter(index, knob, value)
                _, found = index.search(query, 10)
                rows.append(
                    [
                        count,
                        f"{factory} {knob}={value}",
                        build,
                        one_at_a_time_ms(index, query),
                        f"{recall_at_k(found, truth):.3f}",
                        per_vector,
                    ]
                )
        factory = choose_index_type(count, dim)
        started = time.perf_counter()
        index = build_index(base, np.arange(count), factory)
        nprobe, _ = tune_nprobe(index, base, np.arange(count))
        build = time.perf_counter() - started
        params = search_params(index, nprobe)
        _, found = index.search(query, 10, params=params)
        rows.append(
            [
                count,
                f"**auto: {factory}**" + (f" nprobe={nprobe}" if nprobe else ""),
                build,
                one_at_a_time_ms(index, query, params),
                f"{recall_at_k(found, truth):.3f}",
                round(faiss.serialize_index(index).nbytes / count),
            ]
        )
    table(
        f"FAISS, d={dim}, {queries} queries one at a time, clustered synthetic unit vectors",
        ["N", "index", "build s", "ms/query", "recall@10", "bytes/vector"],
        rows,
    )
