"""Concurrent queries share forward passes instead of queueing for the model one by one.

Greedy, not timed: the worker takes every query that is waiting when the model becomes free, so a
lone query never waits for company, and under load the batch grows by itself with the queue. On a
2-core CPU a batch of 16 runs several times more images per second than 16 batches of one
(bench/speed.py, runtimes table).

A query may bring several images (itself and its quarter turns, rotations.py); they wait as one
item, and a batch runs one forward pass per shape (rounded to the model's stride), so a landscape
image is not padded to a square with a portrait one: a lone landscape query and its two turns
took 14% less forward time than as one padded batch (bench/README.md, "Photos stored sideways").
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np

from search_by_image.errors import BatcherClosed
from search_by_image.metrics import BATCH_SIZE
from search_by_image.model.preprocessing import STRIDE

if TYPE_CHECKING:
    from search_by_image.model.embedder import Embedder

#: Upper bound on the images of one coalesced batch: bounds the padding cost and a batch's latency.
MAX_BATCH = 16
#: ... for an fp32 model on the CPU, whose activations for 16 images at 448 px took the service to
#: 748 MB in the load test's burst; 8 took it to 518 MB (bench/README.md, "Serving without torch").
FP32_CPU_BATCH = 8


def batch_limit(embedder: Embedder) -> int:
    """The service's largest batch for this embedder (SBI_QUERY_BATCH=0): smaller for an fp32
    model on the CPU, where a batch's activations are most of the service's peak memory."""
    if embedder.device == "cpu" and embedder.precision == "fp32":
        return FP32_CPU_BATCH
    return MAX_BATCH


class QueryBatcher:
    def __init__(self, embedder: Embedder, max_batch: int = MAX_BATCH):
        self.embedder = embedder
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[list[np.ndarray], Future] | None] = queue.Queue()
        # a query is queued, or refused, atomically with respect to close(): none waits on a dead worker
        self._closing = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="query-batcher", daemon=True)
        self._worker.start()

    def embed(self, prepared: np.ndarray) -> np.ndarray:
        """One preprocessed query (`Embedder.preprocessing`) in, its descriptor out (blocks)."""
        return self.embed_all([prepared])[0]

    def embed_all(self, prepared: list[np.ndarray]) -> np.ndarray:
        """Several preprocessed images of one query in, their descriptors' rows out (blocks);
        embedded in the same round of forward passes."""
        result: Future = Future()
        with self._closing:
            if self._closed:
                raise BatcherClosed("The service is stopping")
            self._queue.put((prepared, result))
        return result.result()

    @property
    def queue_depth(self) -> int:
        """Queries waiting for the model (not the batch being embedded)."""
        return self._queue.qsize()

    def close(self) -> None:
        """Embed what is queued, then stop; later queries raise BatcherClosed instead of waiting."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._worker.join(timeout=30)

    def _run(self) -> None:
        held = None  # a query whose images did not fit in the last batch: first in the next
        while (first := held if held is not None else self._queue.get()) is not None:
            batch, images, held = [first], len(first[0]), None
            stop = False
            while images < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                if images + len(item[0]) > self.max_batch:
                    held = item
                    break
                batch.append(item)
                images += len(item[0])
            self._embed(batch)
            if stop:
                return

    def _embed(self, batch: list[tuple[list[np.ndarray], Future]]) -> None:
        images = [image for prepared, _ in batch for image in prepared]
        BATCH_SIZE.observe(len(batch))
        shapes: dict[tuple[int, ...], list[int]] = {}
        for row, image in enumerate(images):
            shapes.setdefault(tuple(-(-side // STRIDE) for side in image.shape[:2]), []).append(row)
        try:
            passes = [self.embedder.embed_prepared([images[row] for row in rows]) for rows in shapes.values()]
        except Exception as exc:  # noqa: BLE001 - every waiting request must hear about it
            for _, result in batch:
                result.set_exception(exc)
            return
        features = np.empty_like(passes[0], shape=(len(images), passes[0].shape[1]))
        features[[row for rows in shapes.values() for row in rows]] = np.concatenate(passes)
        start = 0
        for prepared, result in batch:
            result.set_result(features[start : start + len(prepared)])
            start += len(prepared)
