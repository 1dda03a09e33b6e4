"""GET /search (the page) and POST /search (an upload in, the most similar images out)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from search_by_image.api.deps import SearchAccess, ServiceDep, SettingsDep, UrlsDep, find_collection
from search_by_image.api.pages import query_thumbnail, render_search_page, wants_html
from search_by_image.api.presenters import search_response
from search_by_image.api.schemas import QueryInfo, SearchResponse
from search_by_image.api.uploads import read_upload
from search_by_image.api.url_fetch import ENABLE_HINT, MAX_URL_CHARS, UrlFetcher
from search_by_image.catalog.filters import parse_filters
from search_by_image.catalog.locations import DEFAULT
from search_by_image.errors import InvalidField, UrlRefused
from search_by_image.images import formats
from search_by_image.images.regions import parse_box
from search_by_image.serving import search as searching
from search_by_image.serving.duplicate_review import review_of
from search_by_image.serving.search import Upload

router = APIRouter(tags=["search"])

MAX_K = 100
#: How deep paging goes: results offset..offset+k come from one FAISS search of offset+k.
MAX_OFFSET = 10_000
OFFSET_HELP = f"results to skip, for paging past the first page (0-{MAX_OFFSET})"

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The upload, or what `url` answered, is empty"},
    401: {"description": "This server needs an API key for searching (SBI_SEARCH_REQUIRES_KEY)"},
    404: {"description": "No collection by that name"},
    413: {"description": "The upload (or what `url` answered) or its pixel count is over the limit"},
    415: {"description": "The upload is not an image"},
    422: {
        "description": "Neither `file` nor `url` (or both), `k` out of range, a filter the "
        "collection cannot apply, a truncated/corrupt image, or a `url` refused: URL search off, "
        "not http(s), a non-public address, too many redirects, an error answer"
    },
    429: {"description": "Too many requests from this client (see Retry-After)"},
    502: {"description": "`url` could not be fetched (connection failed, the server's error)"},
    503: {"description": "The collection has no index yet"},
    504: {"description": "Fetching `url` took longer than SBI_URL_SEARCH_TIMEOUT_S"},
}

FILTERS_HELP = (
    'JSON object, column -> condition, all must hold: a value {"category": "animals"}, a list '
    '{"category": ["animals", "food"]}, or a range {"width": {"gte": 500, "lt": 1000}} '
    "(gt, gte, lt, lte; numbers or ISO dates). See GET /collections/{name} for the columns."
)


BOX_HELP = (
    "search only this region of the query: left,top,right,bottom in pixels, or as "
    "fractions of the width and height when all four are at most 1 (e.g. 0.5,0,1,1)"
)


COLLAPSE_HELP = (
    "copies: one result per photo, its verified copies (the collection's duplicate groups, and "
    "copies of the query) folded into the best-ranked, which says how many it stands for"
)


URL_HELP = (
    "instead of `file`: the http(s) address of the query image, fetched by the service (only "
    "with SBI_URL_SEARCH; public addresses only, at most 3 redirects, the upload size limit)"
)


async def query_bytes(
    file: UploadFile | None, url: str | None, max_bytes: int, fetcher: UrlFetcher | None
) -> tuple[bytes, str | None]:
    """The query image's bytes and its name: the upload's, or what `url` answers (api/url_fetch.py)."""
    url = url.strip() if url else None
    if url and file is not None and not file.filename and not file.size:
        file = None  # the page's form without JavaScript sends its empty file input along
    if url and file is not None:
        raise InvalidField(("url",), "send either `file` or `url`, not both")
    if url:
        if fetcher is None:
            raise UrlRefused(422, ENABLE_HINT)
        return await fetcher.fetch(url), url
    if file is None:
        raise InvalidField(("file",), "send the query image as `file` (multipart), or its address as `url`")
    return await read_upload(file, max_bytes), file.filename


@router.get("/search", response_class=HTMLResponse, summary="The upload page")
def search_page(request: Request):
    return render_search_page(request)


@router.post(
    "/search",
    response_model=SearchResponse,
    responses=ERRORS,
    summary="Find the indexed images most similar to an uploaded photo",
    description="Multipart upload of `file`, or `url`, the address of the image (with "
    "SBI_URL_SEARCH). Answers JSON, or the results page when the request accepts text/html (the "
    "page's plain form post).",
)
async def search(
    request: Request,
    caller: SearchAccess,
    service: ServiceDep,
    urls: UrlsDep,
    settings: SettingsDep,
    file: Annotated[UploadFile | None, File(description=f"the query image ({formats.described()})")] = None,
    url: Annotated[str | None, Form(max_length=MAX_URL_CHARS, description=URL_HELP)] = None,
    k: Annotated[int, Form(ge=1, le=MAX_K, description="number of results")] = 10,
    collection: Annotated[str, Form(description="which collection to search")] = DEFAULT,
    filters: Annotated[str | None, Form(description=FILTERS_HELP)] = None,
    box: Annotated[str | None, Form(description=BOX_HELP)] = None,
    offset: Annotated[int, Form(ge=0, le=MAX_OFFSET, description=OFFSET_HELP)] = 0,
    collapse: Annotated[Literal["none", "copies"], Form(description=COLLAPSE_HELP)] = "none",
):
    chosen = find_collection(service, collection)
    snapshot = chosen.require()  # one snapshot for the whole request
    data, filename = await query_bytes(file, url, settings.max_upload_bytes, request.app.state.url_fetcher)
    folding = collapse == "copies"
    upload = Upload(data, k, offset, parse_filters(filters), parse_box(box), folding)
    copies = review_of(chosen).copy_groups(snapshot) if folding else None
    # filters, decode and search in one worker thread: each hop between the event loop and the
    # thread pool waits for a core on a loaded machine
    found = await run_in_threadpool(searching.search, snapshot, upload, settings.max_image_pixels, copies)
    image, box_px = found.image, found.box_px
    query = QueryInfo(
        filename=filename, width=image.width, height=image.height, box=list(box_px) if box_px else None
    )
    response = search_response(urls, found.hits, query, k, offset, found.decode_ms, caller.key_id)
    if wants_html(request):
        return render_search_page(
            request,
            response=response,
            query_image=query_thumbnail(image),
            k=k,
            collection=snapshot.name,
            filters=filters,
            url=url,
            collapse=collapse,
        )
    return response
