"""Search results as the API answers them: the hits of one snapshot joined with its paths,
metadata, match kinds and URLs (POST /search, GET .../similar, and evaluation's ProductSearch)."""

from search_by_image import metrics
from search_by_image.match_kinds import thresholds_for
from search_by_image.schemas import QueryInfo, SearchHit, SearchResponse, Timing
from search_by_image.service import SearchService
from search_by_image.snapshot import Hits


def search_response(
    service: SearchService,
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
    store, metadata = snapshot.store, snapshot.metadata
    kinds = thresholds_for(store.whitening is not None)
    results = []
    checks = found.checks or [None] * len(found.hits)
    for rank, ((image_id, score), check) in enumerate(zip(found.hits, checks), start=offset + 1):
        path = store.path_of(image_id)
        match = kinds.kind(score) if check is None else kinds.checked_kind(score, check.copy, check.verified)
        results.append(
            SearchHit(
                rank=rank,
                id=image_id,
                path=path,
                score=round(score, 6),
                match=match,
                inliers=None if check is None else check.inliers,
                image_url=service.image_url(snapshot.name, path, key_id),
                thumbnail_url=service.thumbnail_url(snapshot, path, key_id),
                metadata=metadata.for_path(path),
            )
        )
    return SearchResponse(
        query=query,
        collection=snapshot.name,
        k=k,
        offset=offset,
        matched=found.matched,
        model=store.manifest.embedder.model,
        results=results,
        timing=Timing(
            decode_ms=round(decode_ms, 2),
            embed_ms=round(found.embed_ms, 2),
            search_ms=round(found.search_ms, 2),
            verify_ms=round(found.verify_ms, 2),
            total_ms=round(decode_ms + found.embed_ms + found.search_ms + found.verify_ms, 2),
        ),
    )
