"""What the routes share: the loaded index, the embedder that matches it, and the metadata.

Built once at startup (main.py's lifespan). The embedder is rebuilt from the index manifest,
never from the settings, so a query is processed exactly like the collection was.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import quote

from PIL import Image

from search_by_image.backbones import WeightsUnavailable
from search_by_image.batcher import QueryBatcher
from search_by_image.embedder import Embedder
from search_by_image.index_store import IndexCorrupt, IndexMissing, IndexStore
from search_by_image.metadata import Metadata, load_metadata
from search_by_image.schemas import QueryInfo, SearchHit, SearchResponse, Timing

log = logging.getLogger(__name__)


class NoIndex(RuntimeError):
    """Search is impossible until an index is built; the message says how."""


@dataclass
class SearchService:
    store: IndexStore | None = None
    embedder: Embedder | None = None
    metadata: Metadata | None = None
    batcher: QueryBatcher | None = None
    problem: str | None = None

    @classmethod
    def start(cls, settings) -> SearchService:
        service = cls()
        try:
            store = IndexStore.load(settings.saved_dir)
            embedder = Embedder(store.manifest.embedder, settings.device, settings.precision)
        except (IndexMissing, IndexCorrupt, WeightsUnavailable) as exc:
            service.problem = str(exc)
            log.warning("Serving without an index: %s", exc)
            return service
        service.store, service.embedder = store, embedder
        service.batcher = QueryBatcher(embedder)
        service.metadata = load_metadata(settings.metadata_csv, store.paths)
        for problem in service.metadata.problems():
            log.warning("Metadata: %s", problem)
        log.info(
            "Serving %d images from %s with %s on %s (%s)", len(store), settings.saved_dir,
            store.manifest.embedder.model, service.embedder.device, service.embedder.precision,
        )
        return service

    @property
    def size(self) -> int:
        return len(self.store) if self.store else 0

    @property
    def model(self) -> str | None:
        return self.store.manifest.embedder.model if self.store else None

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close()

    def ready(self) -> tuple[IndexStore, Embedder]:
        if self.store is None or self.embedder is None:
            raise NoIndex(self.problem or "no index loaded")
        return self.store, self.embedder

    def search(self, image: Image.Image, k: int, filename: str | None, decode_ms: float) -> SearchResponse:
        store, embedder = self.ready()
        started = time.perf_counter()
        query = self.batcher.embed(*embedder.preprocess(image))
        embedded = time.perf_counter()
        (hits,) = store.search(query[None], k)
        searched = time.perf_counter()
        results = [
            SearchHit(
                rank=rank,
                path=store.paths[row],
                score=round(score, 6),
                image_url=f"/images/{quote(store.paths[row])}",
                metadata=self.metadata.for_path(store.paths[row]),
            )
            for rank, (row, score) in enumerate(hits, start=1)
        ]
        embed_ms, search_ms = (embedded - started) * 1e3, (searched - embedded) * 1e3
        return SearchResponse(
            query=QueryInfo(filename=filename, width=image.width, height=image.height),
            k=k,
            model=store.manifest.embedder.model,
            results=results,
            timing=Timing(
                decode_ms=round(decode_ms, 2),
                embed_ms=round(embed_ms, 2),
                search_ms=round(search_ms, 2),
                total_ms=round(decode_ms + embed_ms + search_ms, 2),
            ),
        )
