"""Which distributed vector engine a collection can be served from: the candidates measured alike.

    nice -n 10 python -m bench.engines [--count 100000] [--engines faiss,milvus,milvus-lite,...]

Synthetic descriptors of the product's size (EfficientNet-Lite0 GeM: 1280-d, L2-normalised,
drawn around 1,000 centres so an IVF index has clusters to find), with an integer column of 100
values (a filter on one value keeps 1%). Each engine gets the same rows and queries and the same
index where it has one (IVF1024,Flat, nprobe 32, inner product: the embedded default's index at
100k); qdrant has only HNSW / a plain scan. Measured per engine: start-up (to the first answer),
insert throughput (with the index built and loaded), search p50 (k=10, one query at a time),
filtered search p50 (1% of the rows, filtered inside the search), recall@10 against an exact
scan, delete latency, how long a write takes to be seen from a second client (another process's
connection where the engine allows one), and the memory held (the server's RSS for Milvus).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import psutil

from bench.engines_adapters import ADAPTERS, Engine

DIM = 1280
CATEGORIES = 100
QUERIES = 200


@dataclass
class Row:
    engine: str
    start_s: float = float("nan")
    insert_per_s: float = float("nan")
    search_ms: float = float("nan")
    filtered_ms: float = float("nan")
    filtered_found: float = float("nan")
    recall: float = float("nan")
    delete_ms: float = float("nan")
    visible_ms: str = "n/a"
    rss_mb: float = float("nan")
    notes: list[str] = field(default_factory=list)


def descriptors(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` clustered unit vectors, their category column, and held-out queries."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, DIM), dtype=np.float32)
    which = rng.integers(0, len(centres), count + QUERIES)
    vectors = centres[which] + rng.standard_normal((count + QUERIES, DIM), dtype=np.float32) * 0.8
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    categories = rng.integers(0, CATEGORIES, count).astype(np.int64)
    return vectors[:count], categories, vectors[count:]


def exact(vectors: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[set[int]]:
    scores = queries @ vectors.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    return [set(map(int, row)) for row in np.argsort(-scores, axis=1)[:, :k]]


def p50_ms(run: Callable[[np.ndarray], list[int]], queries: np.ndarray) -> tuple[float, list[list[int]]]:
    times, found = [], []
    for query in queries:
        started = time.perf_counter()
        found.append(run(query))
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3, found


def measure(name: str, count: int, folder: str) -> Row:
    row = Row(name)
    vectors, categories, queries = descriptors(count)
    ids = np.arange(count, dtype=np.int64)
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    engine: Engine = ADAPTERS[name](folder, DIM)
    row.start_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        engine.insert(ids, vectors, categories)
        engine.ready()
        row.insert_per_s = count / (time.perf_counter() - started)
        row.search_ms, found = p50_ms(lambda q: engine.search(q, 10, None), queries)
        truth = exact(vectors, queries, 10)
        row.recall = float(np.mean([len(set(f) & t) / 10 for f, t in zip(found, truth)]))
        wanted = 7
        row.filtered_ms, found = p50_ms(lambda q: engine.search(q, 10, wanted), queries)
        if any(categories[i] != wanted for f in found for i in f):
            row.notes.append("filter returned other rows")
        row.filtered_found = float(np.mean([len(f) for f in found]))
        started = time.perf_counter()
        engine.delete([int(ids[0])])
        row.delete_ms = (time.perf_counter() - started) * 1e3
        row.visible_ms = engine.visibility_ms(vectors[1] * 0.999 + queries[0] * 0.001, count)
        row.rss_mb = (engine.rss() or psutil.Process().memory_info().rss - before) / 2**20
        row.notes += engine.notes
    finally:
        engine.close()
    return row


def _run_one(name: str, count: int, results) -> None:
    os.nice(0)
    folder = tempfile.mkdtemp(prefix=f"sbi-bench-{name}-")
    try:
        results.put(measure(name, count, folder))
    except Exception as exc:  # one engine failing must not hide the others' figures
        results.put(Row(name, notes=[f"failed: {type(exc).__name__}: {exc}"[:200]]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def table(rows: list[Row], count: int) -> str:
    head = (
        f"| engine ({count:,} x {DIM}-d) | start s | insert /s | search p50 ms | filtered p50 ms "
        "(found of 10) | recall@10 | delete ms | 2nd client sees a write | RSS MB | notes |"
    )
    lines = [head, "|" + " --- |" * 10]
    for r in rows:
        lines.append(
            f"| {r.engine} | {r.start_s:.1f} | {r.insert_per_s:,.0f} | {r.search_ms:.2f} | "
            f"{r.filtered_ms:.2f} ({r.filtered_found:.1f}) | {r.recall:.3f} | {r.delete_ms:.1f} | "
            f"{r.visible_ms} | {r.rss_mb:,.0f} | {'; '.join(r.notes)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--engines", default=",".join(ADAPTERS))
    args = parser.parse_args()
    rows = []
    context = multiprocessing.get_context("spawn")
    for name in args.engines.split(","):
        results = context.Queue()
        process = context.Process(target=_run_one, args=(name, args.count, results))  # own RSS
        process.start()
        rows.append(results.get())
        process.join()
        print(table(rows[-1:], args.count).splitlines()[-1], flush=True)
    print(table(rows, args.count))


if __name__ == "__main__":
    main()
