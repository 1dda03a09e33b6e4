"""GET /images/{path} and /thumbnails/{path}: the indexed images and their grid thumbnails."""

import posixpath
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from search_by_image.api.auth import UrlKind
from search_by_image.api.deps import (
    Credentials,
    ServiceDep,
    SettingsDep,
    UrlsDep,
    authenticate,
    find_collection,
)
from search_by_image.catalog.locations import DEFAULT
from search_by_image.catalog.thumbnails import covering
from search_by_image.errors import NoLongerReadable, NotIndexed
from search_by_image.images.decoding import UnreadableImage, open_rgb
from search_by_image.serving.collection import Collection

router = APIRouter(tags=["images"])

#: Originals: their URL names a path, whose file may change; an hour, like a signed URL.
IMAGE_MAX_AGE_S = 3600
#: Thumbnails: their URL carries the image's fingerprint (`v`), so it never changes content.
THUMBNAIL_MAX_AGE_S = 365 * 24 * 3600

CollectionQuery = Annotated[str, Query(description="the collection it belongs to")]
SignedFor = Annotated[str | None, Query(description="signed URL: the API key id it is for")]
Expiry = Annotated[int | None, Query(description="signed URL: expiry (Unix time)")]
Signature = Annotated[str | None, Query(description="signed URL: signature")]


def _indexed(
    request: Request,
    service,
    urls,
    credentials,
    kind: UrlKind,
    collection: str,
    path: str,
    signed: tuple[str | None, int | None, str | None],
) -> tuple[Collection, tuple[int, int], Path]:
    """The collection, fingerprint and file of an indexed path; 401/404 with a reason otherwise.

    Only paths that are in the index are served: anything else, `..` tricks included, is a 404;
    so is an indexed path that is now a symlink leading outside the collection's folder.
    Where searching needs a key, the URLs in results are signed (an <img> cannot send a header):
    `signed` is their (key id, expiry, signature), valid for this kind of file and this path only,
    for an hour and while that key exists (auth.UrlSigner); a key with scope search works too.
    """
    if urls.signer is None or not urls.signer.check(kind, collection, path, *signed):
        authenticate(request, credentials, "search")
    served = find_collection(service, collection)
    snapshot = served.snapshot
    if snapshot is None and served.loading:
        served.require()  # 503 with Retry-After while the service has just started
    normal = posixpath.normpath(path)
    if (
        snapshot is None
        or snapshot.store.id_of(path) is None
        or normal.startswith(("..", "/"))
        or normal != path
    ):
        raise NotIndexed("no such indexed image")
    file = served.location.served_file(path)
    if file is None:
        raise NotIndexed(
            "this image was indexed but is no longer on disk, or no longer a "
            "file inside the collection's folder",
        )
    return served, snapshot.store.fingerprint_of(path), file


def _cached(request: Request, file: Path, max_age: int, shared: bool, immutable: bool = False):
    """The file with Cache-Control and its validators (ETag, Last-Modified); 304 when the
    client's copy is current."""
    scope = "public" if shared else "private"
    headers = {"Cache-Control": f"{scope}, max-age={max_age}" + (", immutable" if immutable else "")}
    try:
        stat = file.stat()
    except FileNotFoundError:  # deleted since it was looked up
        raise NotIndexed("this image was indexed but is no longer on disk") from None
    response = FileResponse(file, headers=headers, stat_result=stat)
    etag = response.headers["etag"]
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers={**headers, "ETag": etag})
    return response


@router.get("/images/{path:path}", summary="An indexed image", response_class=FileResponse)
def indexed_image(
    request: Request,
    path: str,
    service: ServiceDep,
    urls: UrlsDep,
    credentials: Credentials,
    collection: CollectionQuery = DEFAULT,
    key: SignedFor = None,
    exp: Expiry = None,
    sig: Signature = None,
):
    _, _, file = _indexed(request, service, urls, credentials, "images", collection, path, (key, exp, sig))
    return _cached(request, file, IMAGE_MAX_AGE_S, shared=urls.signer is None)


@router.get(
    "/thumbnails/{path:path}",
    summary="An indexed image's grid thumbnail (JPEG, 448 px)",
    response_class=FileResponse,
)
async def thumbnail(
    request: Request,
    path: str,
    service: ServiceDep,
    urls: UrlsDep,
    settings: SettingsDep,
    credentials: Credentials,
    collection: CollectionQuery = DEFAULT,
    key: SignedFor = None,
    exp: Expiry = None,
    sig: Signature = None,
    v: Annotated[str | None, Query(description="the image's version (in thumbnail_url)")] = None,
):
    """Made while indexing or adding; an image indexed without one gets it now, once."""
    served, fingerprint, file = _indexed(
        request, service, urls, credentials, "thumbnails", collection, path, (key, exp, sig)
    )
    thumbs = served.thumbnails
    small = thumbs.file(path, fingerprint)
    if not small.is_file():
        try:
            image = await run_in_threadpool(open_rgb, file, settings.max_image_pixels, covering(None))
            small = await run_in_threadpool(thumbs.write, path, fingerprint, image)
        except UnreadableImage as exc:
            raise NoLongerReadable(f"this image cannot be read any more: {exc.reason}") from exc
        except OSError:  # a read-only saved folder: answer with the original instead
            return _cached(request, file, IMAGE_MAX_AGE_S, shared=urls.signer is None)
    return _cached(request, small, THUMBNAIL_MAX_AGE_S, shared=urls.signer is None, immutable=v is not None)
