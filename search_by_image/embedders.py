"""One embedder (and its query batcher) per embedder spec, shared by every collection built with it.

Collections indexed with the same model and preprocessing share one model in memory and one
batcher, so concurrent queries to different collections still coalesce into one forward pass.
"""

from __future__ import annotations

import threading
from pathlib import Path

from search_by_image.batcher import QueryBatcher
from search_by_image.embedder import Embedder, EmbedderSpec


class EmbedderPool:
    def __init__(self, device: str, precision: str, runtime: str = "torch", cache_dir: Path | None = None):
        self.device = device
        self.precision = precision
        self.runtime = runtime
        self.cache_dir = cache_dir
        self._loaded: dict[EmbedderSpec, tuple[Embedder, QueryBatcher]] = {}
        self._lock = threading.Lock()

    def get(self, spec: EmbedderSpec) -> tuple[Embedder, QueryBatcher]:
        """The embedder for `spec`, loaded on first use (raises WeightsUnavailable)."""
        with self._lock:
            if spec not in self._loaded:
                embedder = Embedder(spec, self.device, self.precision, runtime=self.runtime,
                                    cache_dir=self.cache_dir)
                self._loaded[spec] = (embedder, QueryBatcher(embedder))
            return self._loaded[spec]

    def close(self) -> None:
        with self._lock:
            for _, batcher in self._loaded.values():
                batcher.close()
            self._loaded.clear()
