"""GET / (what this service is) and GET /health (for probes and people).

Both are open to anyone, even where keys are required: the reasons they give (a missing folder,
no index yet) name no server path; the logs have them.
"""

from fastapi import APIRouter

from search_by_image import __version__
from search_by_image.api import presenters
from search_by_image.api.deps import ServiceDep
from search_by_image.api.presenters import without_paths
from search_by_image.api.schemas import Health, ServiceInfo

router = APIRouter(tags=["service"])

ENDPOINTS = {
    "GET /": "this information",
    "GET /search": "the upload page",
    "POST /search": "multipart `file` (+ optional `k` 1-100, `collection`, `filters` JSON, "
    "`box`, `offset` for paging, `collapse=copies`): the most similar images as JSON",
    "GET /collections": "every collection with its size",
    "GET /collections/{name}": "one collection and its filterable metadata columns",
    "GET /collections/{name}/metadata.csv": "the collection's metadata as a CSV (API rows included)",
    "POST /collections/{name}/images": "multipart `files` (+ optional `metadata` JSON): add images",
    "DELETE /collections/{name}/images/{id}": "remove an image",
    "GET /collections/{name}/images/{id}/similar": "more like this: the images most similar to an "
    "indexed one (`?k=&offset=&filters=`), from its stored descriptor",
    "GET /collections/{name}/duplicates": "groups of near-duplicate images with a suggested keeper "
    "(`?threshold=`, `filters`, `offset`, `limit`)",
    "POST /collections/{name}/duplicates/keep-one": "keep one image of a group, trash the rest (undoable)",
    "POST /collections/{name}/duplicates/keep-all": "remember a group's images as not duplicates",
    "POST /collections/{name}/duplicates/apply-suggestions": "every copies group's suggestion: a preview, "
    "then with `confirm` done",
    "POST /collections/{name}/duplicates/decisions/{id}/undo": "undo a review decision",
    "GET /images/{path}": "an indexed image (`?collection=` for a named collection)",
    "GET /thumbnails/{path}": "its grid thumbnail, a JPEG of at most 448 px (`thumbnail_url` in results)",
    "GET /health": "status, number of indexed images, model, device, loading and indexing progress",
    "GET /metrics": "Prometheus metrics: requests, latencies, batches, images, reloads, rejections",
    "GET /docs": "interactive API documentation",
}


@router.get("/", response_model=ServiceInfo, summary="Welcome and API overview")
async def root(service: ServiceDep) -> ServiceInfo:
    default = presenters.summary(service.default)
    return ServiceInfo(
        name="search-by-image",
        version=__version__,
        images=default.images,
        model=default.model,
        collections=list(service.collections),
        endpoints=ENDPOINTS,
    )


@router.get("/health", response_model=Health, summary="Liveness and index status")
# async on purpose: it only reads state, so it runs on the event loop and answers even when every
# worker thread is busy with uploads and searches
async def health(service: ServiceDep) -> Health:
    default = presenters.summary(service.default)
    indexing = service.indexer.status() if service.indexer else None
    if indexing is not None:
        indexing = indexing.model_copy(update={"detail": without_paths(indexing.detail)})
    loading = service.loading
    return Health(
        status="ok"
        if service.ready
        else "loading"
        if loading
        else "indexing"
        if indexing and indexing.state == "running"
        else "no_index",
        images=default.images,
        model=default.model,
        device=service.device,
        # a default collection with no index: why the service could not build one says more
        detail=without_paths(
            (
                service.indexer.problems.get(default.name)
                if service.indexer and default.status != "ok"
                else None
            )
            or default.detail
        ),
        loading=loading,
        indexing=indexing,
        collections=[
            summary.model_copy(update={"detail": without_paths(summary.detail)})
            for summary in map(presenters.summary, service.collections.values())
        ],
    )
