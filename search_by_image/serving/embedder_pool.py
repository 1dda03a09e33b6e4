"""One embedder (and its query batcher) per embedder spec, shared by every collection built with it.

Collections indexed with the same model and preprocessing share one model in memory and one
batcher, so concurrent queries to different collections still coalesce into one forward pass.
"""

from __future__ import annotations

import threading

from search_by_image.model.embedder import Embedder, EmbedderSpec
from search_by_image.serving.batcher import QueryBatcher, batch_limit
from search_by_image.settings import Settings


class EmbedderPool:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.device = settings.device
        self._loaded: dict[EmbedderSpec, tuple[Embedder, QueryBatcher]] = {}
        self._lock = threading.Lock()

    def get(self, spec: EmbedderSpec) -> tuple[Embedder, QueryBatcher]:
        """The embedder for `spec`, loaded on first use (raises WeightsUnavailable)."""
        with self._lock:
            if spec not in self._loaded:
                # the service's memory goes back between bursts of queries (onnx_runtime.OnnxTrunk)
                embedder = Embedder.configured(spec, self.settings, keep_memory=False)
                limit = self.settings.query_batch or batch_limit(embedder)
                self._loaded[spec] = (embedder, QueryBatcher(embedder, limit))
            return self._loaded[spec]

    def loaded(self) -> dict[EmbedderSpec, tuple[Embedder, QueryBatcher]]:
        with self._lock:
            return dict(self._loaded)

    def close(self) -> None:
        with self._lock:
            for _, batcher in self._loaded.values():
                batcher.close()
            self._loaded.clear()
