"""GET /search (the page) and POST /search (an upload in, the most similar images out)."""

import time
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from search_by_image.deps import ServiceDep, SettingsDep
from search_by_image.pages import query_thumbnail, render_search_page, wants_html
from search_by_image.schemas import SearchResponse
from search_by_image.service import NoIndex
from search_by_image.uploads import decode_upload, read_upload

router = APIRouter(tags=["search"])

MAX_K = 100

ERRORS = {
    400: {"description": "The upload is empty"},
    413: {"description": "The upload or its pixel count is over the configured limit"},
    415: {"description": "The upload is not an image"},
    422: {"description": "Missing `file` field, `k` out of range, or a truncated/corrupt image"},
    503: {"description": "No index has been built yet"},
}


@router.get("/search", response_class=HTMLResponse, summary="The upload page")
def search_page(request: Request):
    return render_search_page(request)


@router.post(
    "/search",
    response_model=SearchResponse,
    responses=ERRORS,
    summary="Find the indexed images most similar to an uploaded photo",
    description="Multipart upload. Answers JSON, or the results page when the request accepts "
    "text/html (the page's plain form post).",
)
async def search(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="the query image (JPEG, PNG, WebP, GIF, BMP, TIFF)")],
    k: Annotated[int, Form(ge=1, le=MAX_K, description="number of results")] = 10,
):
    try:
        _, embedder = service.ready()
    except NoIndex as exc:
        raise HTTPException(503, f"search is unavailable: {exc}") from exc
    data = await read_upload(file, settings.max_upload_bytes)
    started = time.perf_counter()
    image = await run_in_threadpool(
        decode_upload, data, settings.max_image_pixels, embedder.preprocess.resized_size
    )
    decode_ms = (time.perf_counter() - started) * 1e3
    response = await run_in_threadpool(service.search, image, k, file.filename, decode_ms)
    if wants_html(request):
        return render_search_page(request, response=response, query_image=query_thumbnail(image), k=k)
    return response
