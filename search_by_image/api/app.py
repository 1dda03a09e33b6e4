"""The HTTP service's app factory: `create_app(settings)` (main.py makes `main:app` with it).

The lifespan loads the collections and their models once; routes live in search_by_image/routes;
one handler answers every domain error (search_by_image/errors.py) with its status and headers.
"""

import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from search_by_image import __version__
from search_by_image import metrics as request_metrics
from search_by_image.api.auth import KeyStore
from search_by_image.api.headers import SecurityHeaders
from search_by_image.api.pages import render_search_page, wants_html
from search_by_image.api.presenters import without_paths
from search_by_image.api.rate_limit import RateLimiter, trusted_networks
from search_by_image.api.routes import (
    collection_images,
    collections,
    duplicates,
    health,
    images,
    metrics,
    search,
)
from search_by_image.api.uploads import MULTIPART_OVERHEAD, UploadSizeLimit, parse_into_memory
from search_by_image.api.url_fetch import UrlFetcher
from search_by_image.api.url_policy import AddressPolicy
from search_by_image.api.urls import ImageUrls
from search_by_image.errors import InvalidField, SearchByImageError
from search_by_image.layout import KEYS_FILE
from search_by_image.serving import collection_metrics
from search_by_image.serving.service import SearchService
from search_by_image.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _first_error(exc: RequestValidationError) -> str:
    error = exc.errors()[0]
    field = error["loc"][-1] if error.get("loc") else "request"
    return f"{field}: {error.get('msg', 'invalid')}"


async def _http_error(request: Request, exc: HTTPException):
    """The page's plain form post gets its error on the page; API clients get JSON."""
    if wants_html(request) and request.url.path == "/search":
        return render_search_page(request, exc.status_code, error=exc.detail)
    return await http_exception_handler(request, exc)


async def _validation_error(request: Request, exc: RequestValidationError):
    if wants_html(request) and request.url.path == "/search":
        return render_search_page(request, 422, error=_first_error(exc))
    return await request_validation_exception_handler(request, exc)


async def _domain_error(request: Request, exc: SearchByImageError):
    """Every domain error (search_by_image.errors) as its HTTP answer: a field the service cannot
    use in the shape of FastAPI's own 422 (`loc` included), the others as status + detail."""
    if isinstance(exc, InvalidField):
        error = {"type": "value_error", "loc": ("body", *exc.location), "msg": exc.message}
        return await _validation_error(request, RequestValidationError([error]))
    detail = str(exc)
    if exc.status >= 500:  # the server's own condition: its reason, not where its files are
        log.info("%s %s: %s", request.method, request.url.path, detail)
        detail = without_paths(detail) or ""
    return await _http_error(request, HTTPException(exc.status, detail, headers=dict(exc.headers) or None))


def create_app(settings: Settings | None = None, url_policy: AddressPolicy | None = None) -> FastAPI:
    """The app for `settings` (default: read from the environment, `get_settings`). `url_policy`:
    the addresses URL search may fetch from (default: public ones and SBI_URL_SEARCH_ALLOW's)."""
    settings = settings or get_settings()
    # One service per app, however many lifespans run on it at once (a test client entered while a
    # server's lifespan runs): the first starts it, the last one to end stops it. A second
    # SearchService would replace the first on app.state, and ending its lifespan would leave the app
    # serving a stopped service while the first lifespan still runs.
    lifespans = threading.Lock()
    running = 0

    def enter() -> None:
        nonlocal running
        with lifespans:
            if running == 0:
                app.state.service = SearchService.start(settings)
                app.state.urls = ImageUrls.for_settings(settings, app.state.keys)
                collection_metrics.watch_service(app.state.service)
            running += 1

    def leave() -> None:
        nonlocal running
        with lifespans:
            running -= 1
            if running == 0:
                collection_metrics.forget_service(app.state.service)
                app.state.service.stop()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(enter)
        try:
            yield
        finally:
            await run_in_threadpool(leave)

    app = FastAPI(
        title="search-by-image",
        version=__version__,
        description="Upload a photo, get the most similar images of the indexed collection.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = KeyStore(settings.saved_dir / KEYS_FILE)
    app.state.limiter = RateLimiter(settings.rate_limit)
    app.state.trusted_proxies = trusted_networks(settings.trusted_proxies)
    app.state.url_fetcher = (
        UrlFetcher(
            url_policy or AddressPolicy(settings.url_search_allow),
            settings.max_upload_bytes,
            settings.url_search_timeout_s,
        )
        if settings.url_search
        else None
    )
    app.add_middleware(
        UploadSizeLimit, max_bytes=settings.max_upload_bytes, timeout_s=settings.upload_timeout_s
    )
    parse_into_memory(settings.max_upload_bytes + MULTIPART_OVERHEAD)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(SecurityHeaders)
    request_metrics.instrument(app)
    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(collections.router)
    app.include_router(collection_images.router)
    app.include_router(duplicates.router)
    app.include_router(images.router)
    app.include_router(metrics.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    # Starlette types a handler as taking any Exception; each of these takes the one it is registered for
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(SearchByImageError, _domain_error)  # type: ignore[arg-type]
    return app
