"""Collections: list them, describe one (its filterable columns), export its metadata, find
its near-duplicates.

Adding, deleting and "more like this" are routes/collection_images.py."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from search_by_image.api import presenters
from search_by_image.api.deps import (
    CollectionDep,
    ReadAccess,
    SearchAccess,
    ServiceDep,
    UrlsDep,
)
from search_by_image.api.pages import render_duplicates_page, wants_html
from search_by_image.api.schemas import (
    CollectionInfo,
    CollectionList,
    DuplicateGroup,
    DuplicateImage,
    Duplicates,
)
from search_by_image.catalog.metadata_import import exported
from search_by_image.ranking.duplicates import default_threshold
from search_by_image.ranking.match_kinds import RAW, WHITENED

router = APIRouter(prefix="/collections", tags=["collections"])

MAX_GROUPS_PER_PAGE = 500
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API key, or an unknown or revoked one"},
    403: {"description": "The key lacks the admin scope"},
    429: {"description": "Too many requests from this client (see Retry-After)"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    404: {"description": "No such collection (or image)"},
    507: {"description": "The collection's folders cannot be written (read-only, full)"},
    503: {"description": "No index yet, or an indexer run holds the collection (see Retry-After)"},
}


@router.get("", response_model=CollectionList, summary="Every collection with its size")
def list_collections(_: ReadAccess, service: ServiceDep) -> CollectionList:
    return CollectionList(collections=[presenters.summary(c) for c in service.collections.values()])


@router.get(
    "/{name}",
    response_model=CollectionInfo,
    responses={404: WRITE_ERRORS[404]},
    summary="One collection and the metadata columns its filters can use",
)
def describe_collection(_: ReadAccess, service: ServiceDep, collection: CollectionDep) -> CollectionInfo:
    return presenters.info(collection)


@router.get(
    "/{name}/metadata.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, 404: WRITE_ERRORS[404]},
    summary="The collection's metadata as a CSV",
    description="The columns of the CSV it was indexed with plus those added through the API, one "
    "row per image (images added through the API included), streamed. Cells a spreadsheet would "
    "run as a formula start with `'`; giving the file back as the collection's CSV restores them.",
)
def export_metadata(_: ReadAccess, collection: CollectionDep) -> StreamingResponse:
    return StreamingResponse(
        exported(collection.location.saved_dir),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{collection.name}-metadata.csv"'},
    )


@router.get(
    "/{name}/duplicates",
    response_model=Duplicates,
    responses={404: WRITE_ERRORS[404], 503: {"description": "No index yet"}},
    summary="Groups of near-duplicate images in a collection",
    description="JSON, or a page of thumbnails when the request accepts text/html.",
)
async def duplicates(
    request: Request,
    caller: SearchAccess,
    service: ServiceDep,
    urls: UrlsDep,
    collection: CollectionDep,
    threshold: Annotated[
        float | None,
        Query(
            gt=0,
            le=1,
            description="similarity above which images are duplicates, in search-score "
            f"units (default: {RAW.copy}, or {WHITENED.copy} for a whitened index)",
        ),
    ] = None,
    offset: Annotated[int, Query(ge=0, description="groups to skip (paging)")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_GROUPS_PER_PAGE, description="groups per page")] = 50,
) -> Duplicates:
    """Counted by the rate limiter like a search. The first request after the index changes
    computes the collection's neighbour list; any threshold is then answered from it."""
    snapshot, every_group = await run_in_threadpool(collection.duplicates, threshold)
    groups = every_group[offset : offset + limit]
    found = Duplicates(
        collection=collection.name,
        threshold=default_threshold(snapshot.store) if threshold is None else threshold,
        total=len(every_group),
        images_in_groups=sum(len(g.images) for g in every_group),
        offset=offset,
        groups=[
            DuplicateGroup(
                kind=g.kind,
                best=round(g.best, 4),
                weakest=round(g.weakest, 4),
                images=[
                    DuplicateImage(
                        id=i,
                        path=p,
                        image_url=urls.image(collection.name, p, caller.key_id),
                        thumbnail_url=urls.thumbnail(snapshot, p, caller.key_id),
                    )
                    for i, p in g.images
                ],
            )
            for g in groups
        ],
    )
    if wants_html(request):
        return render_duplicates_page(request, found, len(snapshot.store), limit)
    return found
