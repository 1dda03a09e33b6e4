"""A collection's images: add them live, delete them (to the trash), and "more like this"."""

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError

from search_by_image.api.deps import (
    AdminAccess,
    CollectionDep,
    SearchAccess,
    ServiceDep,
    SettingsDep,
    UrlsDep,
)
from search_by_image.api.pages import render_search_page, wants_html
from search_by_image.api.presenters import search_response
from search_by_image.api.routes.collections import AUTH_ERRORS, WRITE_ERRORS
from search_by_image.api.routes.search import FILTERS_HELP, MAX_K, MAX_OFFSET, OFFSET_HELP
from search_by_image.api.schemas import (
    AddedImage,
    AddedImages,
    DeletedImage,
    QueryInfo,
    SearchResponse,
    WriteTiming,
)
from search_by_image.api.uploads import declared_pixels, image_format, read_upload
from search_by_image.catalog.filters import parse_filters
from search_by_image.catalog.metadata_writes import check_rows
from search_by_image.errors import InvalidField, TooLarge, UploadRejected
from search_by_image.images.rejections import decode_upload
from search_by_image.json_limits import check_json_text
from search_by_image.serving.live_writes import Upload

router = APIRouter(prefix="/collections", tags=["collections"])

#: JSON text of the `metadata` field: one small object per file is a few hundred bytes
MAX_METADATA_BYTES = 256 * 1024

Row = dict[str, str | int | float | bool | None]
#: a union is not a class, which TypeAdapter's signature asks for (mypy disagreed with itself
#: about it from run to run, cached or not): the expression is passed as Any
_ROW_OR_ROWS: Any = Row | list[Row]
ROWS: TypeAdapter[Row | list[Row]] = TypeAdapter(_ROW_OR_ROWS)


def _rows_for(metadata: str | None, count: int) -> list[dict[str, Any] | None]:
    if metadata is None or not metadata.strip():
        return [None] * count
    check_json_text(metadata, "metadata", MAX_METADATA_BYTES)
    try:
        rows = ROWS.validate_json(metadata)
    except ValidationError as exc:
        raise InvalidField(
            ("metadata",),
            "metadata must be a JSON object of plain values, "
            f"or a list of them (one per file): {exc.errors()[0]['msg']}",
        ) from None
    if isinstance(rows, dict):
        return [rows] * count
    if len(rows) != count:
        raise InvalidField(
            ("metadata",), f"{len(rows)} metadata rows for {count} files: give one per file, or one object"
        )
    return list(rows)


@router.post(
    "/{name}/images",
    response_model=AddedImages,
    status_code=201,
    responses={
        **WRITE_ERRORS,
        413: {"description": "An upload is over the size or pixel limit"},
        415: {"description": "An upload is not an image"},
        422: {"description": "A corrupt image, or metadata that is not valid JSON"},
    },
    summary="Add images to a collection; searchable as soon as this answers",
)
async def add_images(
    caller: AdminAccess,
    service: ServiceDep,
    urls: UrlsDep,
    settings: SettingsDep,
    collection: CollectionDep,
    files: Annotated[list[UploadFile], File(description="one or more images")],
    metadata: Annotated[
        str | None,
        Form(
            description='JSON: one object for every file ({"category": "shoes"}) or a list with one '
            "object per file; written to the collection's metadata CSV"
        ),
    ] = None,
) -> AddedImages:
    started = time.perf_counter()
    if len(files) > settings.max_add_files:
        raise TooLarge(f"at most {settings.max_add_files} files per request")
    snapshot = collection.require()
    rows = _rows_for(metadata, len(files))
    check_rows(rows, snapshot.metadata)
    contents = []
    for number, file in enumerate(files, start=1):
        try:
            contents.append(await read_upload(file, settings.max_upload_bytes))
        except UploadRejected as exc:  # say which file, when several are sent; none is added
            raise exc.reworded(f"file {number} ({file.filename}): {exc}; nothing was added") from exc
    declared = sum(map(declared_pixels, contents))
    if declared > settings.max_add_pixels:
        raise TooLarge(
            f"the files declare {declared} pixels together, more than the limit "
            f"of {settings.max_add_pixels} per request; send them in smaller batches",
        )
    uploads, decode_ms = [], 0.0
    for number, (file, data, row) in enumerate(zip(files, contents, rows), start=1):
        decoding = time.perf_counter()
        try:
            image = await run_in_threadpool(
                decode_upload, data, settings.max_image_pixels, snapshot.embedder.preprocessing.resized_size
            )
        except UploadRejected as exc:
            raise exc.reworded(f"file {number} ({file.filename}): {exc}; nothing was added") from exc
        decode_ms += (time.perf_counter() - decoding) * 1e3
        uploads.append(Upload(data, image, image_format(data), row))
    # MetadataRejected here means the CSV changed while the images were embedded
    added = await run_in_threadpool(collection.add, uploads, snapshot)
    written = collection.require()  # the snapshot the images were added to
    return AddedImages(
        collection=collection.name,
        images=[
            AddedImage(
                id=a.id,
                path=a.path,
                image_url=urls.image(collection.name, a.path, caller.key_id),
                thumbnail_url=urls.thumbnail(written, a.path, caller.key_id),
                created=a.created,
            )
            for a in added
        ],
        timing=WriteTiming(
            decode_ms=decode_ms,
            embed_ms=added.embed_ms,
            write_ms=added.write_ms,
            total_ms=(time.perf_counter() - started) * 1e3,
        ),
    )


@router.get(
    "/{name}/images/{image_id}/similar",
    response_model=SearchResponse,
    responses={
        404: WRITE_ERRORS[404],
        422: {"description": "A filter the collection cannot apply"},
        429: AUTH_ERRORS[429],
        503: {"description": "No index yet"},
    },
    summary="More like this: the images most similar to one already in the collection",
    description="The image's stored descriptor is the query: nothing is uploaded, decoded or "
    "embedded. The image itself is left out. JSON, or the results page when the request accepts "
    "text/html.",
)
async def similar_images(
    request: Request,
    caller: SearchAccess,
    service: ServiceDep,
    urls: UrlsDep,
    collection: CollectionDep,
    image_id: Annotated[int, Path(ge=0, description="the id that search results and adds return")],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="number of results")] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=OFFSET_HELP)] = 0,
    filters: Annotated[str | None, Query(description=FILTERS_HELP)] = None,
) -> SearchResponse:
    snapshot = collection.require()
    allowed = await run_in_threadpool(snapshot.allowed, parse_filters(filters))
    path, found = await run_in_threadpool(snapshot.similar, image_id, k, allowed, offset)
    query = QueryInfo(filename=path, width=None, height=None, id=image_id)
    response = search_response(urls, found, query, k, offset, 0.0, caller.key_id)
    if wants_html(request):
        return render_search_page(
            request,
            response=response,
            k=k,
            collection=collection.name,
            filters=filters,
            query_image=urls.thumbnail(snapshot, path, caller.key_id),
        )
    return response


@router.delete(
    "/{name}/images/{image_id}",
    response_model=DeletedImage,
    responses=WRITE_ERRORS,
    summary="Remove an image from a collection (its file is moved to the collection's trash)",
)
async def delete_image(
    _: AdminAccess,
    collection: CollectionDep,
    image_id: Annotated[int, Path(ge=0, description="the id that search results and adds return")],
) -> DeletedImage:
    started = time.perf_counter()
    path, trashed = await run_in_threadpool(collection.delete, image_id)
    elapsed = (time.perf_counter() - started) * 1e3
    return DeletedImage(
        collection=collection.name,
        id=image_id,
        path=path,
        trashed_to=str(trashed) if trashed else None,
        timing=WriteTiming(write_ms=elapsed, total_ms=elapsed),
    )
