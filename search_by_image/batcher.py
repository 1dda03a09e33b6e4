"""Concurrent queries share forward passes instead of queueing for the model one by one.

Greedy, not timed: the worker takes every query that is waiting when the model becomes free, so a
lone query never waits for company, and under load the batch grows by itself with the queue. On a
2-core CPU a batch of 16 runs several times more images per second than 16 batches of one
(bench/speed.py, runtimes table).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np

from search_by_image.errors import BatcherClosed
from search_by_image.metrics import BATCH_SIZE

if TYPE_CHECKING:
    from search_by_image.embedder import Embedder

#: Upper bound on one coalesced batch: bounds the padding cost and a batch's latency.
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
        self._queue: queue.Queue[tuple[np.ndarray, Future] | None] = queue.Queue()
        # a query is queued, or refused, atomically with respect to close(): none waits on a dead worker
        self._closing = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="query-batcher", daemon=True)
        self._worker.start()

    def embed(self, prepared: np.ndarray) -> np.ndarray:
        """One preprocessed query (`Embedder.preprocessing`) in, its descriptor out (blocks)."""
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
        while (first := self._queue.get()) is not None:
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._embed(batch)
            if stop:
                return

    def _embed(self, batch: list[tuple[np.ndarray, Future]]) -> None:
        BATCH_SIZE.observe(len(batch))
        try:
            features = self.embedder.embed_prepared([prepared for prepared, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiting request must hear about it
            for _, result in batch:
                result.set_exception(exc)
            return
        for row, (_, result) in enumerate(batch):
            result.set_result(features[row])
