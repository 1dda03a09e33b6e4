"""GET /images/{path}: the indexed images themselves, for the result grid."""

import posixpath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from search_by_image.catalog import DEFAULT
from search_by_image.deps import ServiceDep, find_collection

router = APIRouter(tags=["images"])


@router.get("/images/{path:path}", summary="An indexed image", response_class=FileResponse)
def indexed_image(
    path: str,
    service: ServiceDep,
    collection: Annotated[str, Query(description="the collection it belongs to")] = DEFAULT,
):
    """Only paths that are in the index are served: anything else, `..` tricks included, is a 404."""
    target = find_collection(service, collection)
    snapshot = target.snapshot
    normal = posixpath.normpath(path)
    indexed = snapshot is not None and path in snapshot.store.position
    if not indexed or normal.startswith(("..", "/")) or normal != path:
        raise HTTPException(404, "no such indexed image")
    file = target.location.images_dir / path
    if not file.is_file():
        raise HTTPException(404, "this image was indexed but is no longer on disk")
    return FileResponse(file)
