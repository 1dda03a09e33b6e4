"""Collections: list them, describe one (its filterable columns), export its metadata.

Adding, deleting and "more like this" are routes/collection_images.py; duplicates and their
review, routes/duplicates.py."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from search_by_image.api import presenters
from search_by_image.api.deps import (
    CollectionDep,
    ReadAccess,
    ServiceDep,
)
from search_by_image.api.schemas import (
    CollectionInfo,
    CollectionList,
)
from search_by_image.catalog.metadata_import import exported

router = APIRouter(prefix="/collections", tags=["collections"])

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
