"""Collections: list them, describe one (its filterable columns).

Adding, deleting and "more like this" are routes/collection_images.py; duplicates and their
review, routes/duplicates.py."""

from typing import Any

from fastapi import APIRouter

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
