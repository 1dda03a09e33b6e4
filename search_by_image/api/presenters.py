"""Domain objects as the API answers them: the hits of one snapshot joined with their paths,
metadata, match kinds and URLs (POST /search, GET .../similar), and collections described."""

import re
from urllib.parse import quote

from search_by_image import metrics
from search_by_image.api.schemas import (
    CollectionInfo,
    CollectionSummary,
    QueryInfo,
    SearchHit,
    SearchResponse,
    Timing,
)
from search_by_image.api.urls import ImageUrls
from search_by_image.catalog import unreadable
from search_by_image.serving.collection import Collection
from search_by_image.serving.engine_collection import EngineCollection
from search_by_image.serving.snapshot import Hits

#: An absolute POSIX path in a message: from a slash at a word's start to the next space or quote.
_SERVER_PATH = re.compile(r"(?<![\w.~:/-])/[^\s'\"`),;]*")


def without_paths(text: str | None) -> str | None:
    """`text` with every absolute path replaced by a placeholder (a reason, not a location): what
    the server's own conditions say to clients; the logs keep the paths."""
    return None if text is None else _SERVER_PATH.sub("<server path>", text)


def search_response(
    urls: ImageUrls,
    found: Hits,
    query: QueryInfo,
    k: int,
    offset: int,
    decode_ms: float,
    key_id: str | None = None,
) -> SearchResponse:
    """The response for `found`, its timings recorded in the service's metrics; image URLs signed
    for `key_id` where searching needs a key."""
    if query.id is None:  # an upload: decoded and embedded
        metrics.DECODE_SECONDS.observe(decode_ms / 1e3)
        metrics.EMBED_SECONDS.observe(found.embed_ms / 1e3)
    metrics.SEARCH_SECONDS.observe(found.search_ms / 1e3)
    snapshot = found.snapshot
    labelled = found.labelled()
    rows = snapshot.metadata.rows_for(hit.id for hit in labelled)
    results = [
        SearchHit(
            rank=rank,
            id=hit.id,
            path=hit.path,
            score=round(hit.score, 6),
            match=hit.match,
            inliers=None if hit.check is None else hit.check.inliers,
            image_url=urls.image(snapshot.name, hit.path, key_id),
            thumbnail_url=urls.thumbnail(snapshot, hit.path, key_id),
            metadata=rows.get(hit.id, {}),
            copies=copies,
            copies_url=f"/collections/{quote(snapshot.name)}/images/{hit.id}/similar" if copies else None,
        )
        for rank, hit, copies in zip(
            range(offset + 1, offset + 1 + len(labelled)),
            labelled,
            found.copies or [0] * len(labelled),
            strict=True,
        )
    ]
    return SearchResponse(
        query=query,
        collection=snapshot.name,
        k=k,
        offset=offset,
        matched=found.matched,
        model=snapshot.store.manifest.embedder.model,
        results=results,
        timing=Timing(
            decode_ms=round(decode_ms, 2),
            embed_ms=round(found.embed_ms, 2),
            search_ms=round(found.search_ms, 2),
            verify_ms=round(found.verify_ms, 2),
            total_ms=round(decode_ms + found.embed_ms + found.search_ms + found.verify_ms, 2),
        ),
    )


def summary(collection: Collection) -> CollectionSummary:
    if isinstance(collection, EngineCollection):
        return _engine_summary(collection)
    snapshot = collection.snapshot
    store = snapshot.store if snapshot else None
    return CollectionSummary(
        name=collection.name,
        status="ok" if store else "loading" if collection.loading else "no_index",
        images=len(store) if store else 0,
        model=store.manifest.embedder.model if store else None,
        runtime=f"{snapshot.embedder.runtime} {snapshot.embedder.precision}" if snapshot else None,
        index_type=store.manifest.index_type if store else None,
        search_device=store.search_device if store else None,
        detail=collection.problem,
    )


def _engine_summary(collection: EngineCollection) -> CollectionSummary:
    """A collection in a vector engine: its count and whether the engine answers, asked now
    (one count, bounded by the client's timeout: /health never waits longer)."""
    snapshot = collection.snapshot
    health = collection.health()
    spec = snapshot.store.manifest if snapshot else None
    return CollectionSummary(
        name=collection.name,
        status="ok" if snapshot else "loading" if collection.loading else "no_index",
        images=health.count or 0,
        model=spec.embedder.model if spec else None,
        runtime=f"{snapshot.embedder.runtime} {snapshot.embedder.precision}" if snapshot else None,
        index_type=spec.index_type if spec else None,
        search_device="milvus",
        detail=health.problem or collection.problem,
        storage=health.where,
        engine_answers=health.answers,
    )


def info(collection: Collection) -> CollectionInfo:
    snapshot = collection.snapshot
    spec = snapshot.store.manifest.embedder if snapshot else None
    return CollectionInfo(
        **summary(collection).model_dump(),
        columns=snapshot.metadata.described if snapshot else [],
        preprocessing=spec.preprocessing if spec else None,
        pooling=spec.pooling if spec else None,
        unreadable=unreadable.load(collection.location.saved_dir),
    )
