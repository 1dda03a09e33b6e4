"""Concurrent queries are coalesced into shared forward passes, with unchanged answers."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import PHOTOS
from PIL import Image

from search_by_image.serving.batcher import (
    FP32_CPU_BATCH,
    MAX_BATCH,
    BatcherClosed,
    QueryBatcher,
    batch_limit,
)
from search_by_image.serving.embedder_pool import EmbedderPool

NAMES = sorted(p.name for p in PHOTOS.iterdir())


class CountingEmbedder:
    """Wraps the real embedder and records the size of every batch it is given."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.batches: list[int] = []

    def embed_prepared(self, prepared):
        self.batches.append(len(prepared))
        return self.embedder.embed_prepared(prepared)


def test_concurrent_queries_share_batches_and_get_their_own_descriptor(lite0):
    images = [Image.open(PHOTOS / name).convert("RGB") for name in NAMES]
    alone = lite0.embed_images(images[:1])[0]
    counting = CountingEmbedder(lite0)
    batcher = QueryBatcher(counting)
    try:
        with ThreadPoolExecutor(len(images)) as pool:
            results = list(pool.map(lambda image: batcher.embed(lite0.preprocessing(image)), images))
    finally:
        batcher.close()
    assert sum(counting.batches) == len(images)
    assert max(counting.batches) > 1, "13 simultaneous queries should not run one at a time"
    assert float(results[0] @ alone) > 0.98  # same photo, possibly padded in a larger batch
    ranks = [int(np.argmax(np.stack(results) @ r)) for r in results]
    assert ranks == list(range(len(images)))


def test_a_failed_forward_pass_reaches_every_waiting_query():
    """Five queries: the first is in the model while the other four wait; the forward pass fails
    and every one of the five hears why, none is left waiting."""
    gate = threading.Event()
    batches: list[int] = []

    class Broken:
        def embed_prepared(self, prepared):
            batches.append(len(prepared))
            gate.wait(10)
            raise RuntimeError("out of memory")

    batcher = QueryBatcher(Broken())
    try:
        with ThreadPoolExecutor(5) as pool:
            queries = [pool.submit(batcher.embed, np.ones(3, np.float32)) for _ in range(5)]
            deadline = time.monotonic() + 10
            # until the first batch is in the model (held at the gate) and the rest are queued
            while not (batches and sum(batches) + batcher.queue_depth == 5) and time.monotonic() < deadline:
                time.sleep(0.005)
            assert batches and sum(batches) + batcher.queue_depth == 5
            gate.set()
            errors = [query.exception(timeout=10) for query in queries]
    finally:
        gate.set()
        batcher.close()
    assert all(isinstance(e, RuntimeError) and "out of memory" in str(e) for e in errors)
    assert sum(batches) == 5 and max(batches) > 1  # the waiting ones failed together


class Echo:
    def embed_prepared(self, prepared):
        return np.stack([p.ravel() for p in prepared])


def test_a_closed_batcher_refuses_a_query_at_once_instead_of_leaving_it_waiting():
    batcher = QueryBatcher(Echo())
    assert batcher.embed(np.ones(3, np.float32)).tolist() == [1, 1, 1]
    batcher.close()
    batcher.close()  # twice is harmless
    with pytest.raises(BatcherClosed):
        batcher.embed(np.ones(3, np.float32))


def behind_a_busy_model(max_batch: int, later: list) -> tuple[list[np.ndarray], list[int]]:
    """A first query (zeros) held in the model while `later` queries queue (an array: `embed`; a
    list of arrays: one query's images, `embed_all`): every query's answer, and the size of each
    forward pass the model was given."""
    gate = threading.Event()
    batches: list[int] = []

    class Held(Echo):
        def embed_prepared(self, prepared):
            batches.append(len(prepared))
            gate.wait(10)
            return super().embed_prepared(prepared)

    batcher = QueryBatcher(Held(), max_batch=max_batch)
    try:
        with ThreadPoolExecutor(len(later) + 1) as pool:
            queries = [pool.submit(batcher.embed, np.full(2, 0, np.float32))]
            deadline = time.monotonic() + 10
            while not batches and time.monotonic() < deadline:  # the first is in the model
                time.sleep(0.005)
            queries += [
                pool.submit(batcher.embed_all if isinstance(query, list) else batcher.embed, query)
                for query in later
            ]
            while batcher.queue_depth < len(later) and time.monotonic() < deadline:
                time.sleep(0.005)
            gate.set()
            answers = [query.result(timeout=10) for query in queries]
    finally:
        gate.set()
        batcher.close()
    return answers, batches


def test_a_burst_beyond_the_batch_limit_waits_for_the_next_forward_pass():
    """Ten queries while the model is busy with the first: the rest go in passes of at most 3."""
    answers, batches = behind_a_busy_model(3, [np.full(2, i, np.float32) for i in range(1, 10)])
    assert [float(a[0]) for a in answers] == list(range(10))  # each query its own answer
    assert batches == [1, 3, 3, 3]


def test_the_batch_limit_counts_images_and_a_query_that_would_pass_it_waits_whole():
    """Queries of three images each (rotations.py) while the model is busy, limit 4: one query
    per pass, never split, never over the limit."""
    answers, batches = behind_a_busy_model(4, [[np.full(2, i, np.float32)] * 3 for i in range(1, 4)])
    assert [a.ravel()[0] for a in answers] == [0, 1, 2, 3] and [len(a) for a in answers[1:]] == [3] * 3
    assert batches == [1, 3, 3, 3]


def test_the_services_batch_is_smaller_for_an_fp32_model_on_the_cpu(demo_collection, lite0):
    """fp32 activations of a full batch are most of the service's peak memory (bench/README)."""

    class Stub:
        def __init__(self, device, precision):
            self.device, self.precision = device, precision

    assert batch_limit(Stub("cpu", "fp32")) == FP32_CPU_BATCH < MAX_BATCH
    assert batch_limit(Stub("cpu", "int8")) == batch_limit(Stub("cuda:0", "fp32")) == MAX_BATCH
    pool = EmbedderPool(demo_collection)
    chosen = EmbedderPool(demo_collection.model_copy(update={"query_batch": 3}))
    try:
        assert pool.get(lite0.spec)[1].max_batch == batch_limit(lite0)
        assert chosen.get(lite0.spec)[1].max_batch == 3  # SBI_QUERY_BATCH
    finally:
        pool.close()
        chosen.close()


def test_a_querys_images_come_back_in_order_from_one_forward_pass_per_shape():
    """A query and its quarter turns (rotations.py) wait as one item; images of one shape (rounded
    to the stride) share a pass, and none is padded to another shape's size."""
    shapes: list[list[tuple[int, ...]]] = []

    class Shapes(Echo):
        def embed_prepared(self, prepared):
            shapes.append([p.shape for p in prepared])
            return np.stack([np.full(2, p[0, 0, 0], np.float32) for p in prepared])

    landscape, portrait = (448, 336, 3), (336, 448, 3)
    images = [np.full(shape, n, np.uint8) for n, shape in enumerate([landscape, portrait, portrait])]
    batcher = QueryBatcher(Shapes())
    try:
        rows = batcher.embed_all(images)
    finally:
        batcher.close()
    assert rows[:, 0].tolist() == [0, 1, 2]
    assert shapes == [[landscape], [portrait, portrait]]
