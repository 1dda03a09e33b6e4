"""Concurrent queries are coalesced into shared forward passes, with unchanged answers."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import PHOTOS
from PIL import Image

from search_by_image.batcher import BatcherClosed, QueryBatcher

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
