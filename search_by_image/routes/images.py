"""GET /images/{path}: the indexed images themselves, for the result grid."""

import posixpath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse

from search_by_image.catalog import DEFAULT
from search_by_image.deps import Credentials, ServiceDep, authenticate, find_collection

router = APIRouter(tags=["images"])


@router.get("/images/{path:path}", summary="An indexed image", response_class=FileResponse)
def indexed_image(
    request: Request,
    path: str,
    service: ServiceDep,
    credentials: Credentials,
    collection: Annotated[str, Query(description="the collection it belongs to")] = DEFAULT,
    exp: Annotated[int | None, Query(description="signed URL: expiry (Unix time)")] = None,
    sig: Annotated[str | None, Query(description="signed URL: signature")] = None,
):
    """Only paths that are in the index are served: anything else, `..` tricks included, is a 404.

    Where searching needs a key, the URLs in search results are signed (an <img> cannot send a
    header) and valid for an hour; a key with scope search works too.
    """
    if service.signer is None or not service.signer.check(collection, path, exp, sig):
        authenticate(request, credentials, "search")
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
