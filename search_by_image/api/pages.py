"""Server-rendered HTML: the upload page and its results, also for browsers without JavaScript."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from PIL import Image

from search_by_image.api import presenters
from search_by_image.catalog.locations import DEFAULT
from search_by_image.errors import PASS_RETRY_AFTER_S, DuplicatesPending
from search_by_image.images import formats

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
QUERY_THUMBNAIL_PX = 320


def wants_html(request: Request) -> bool:
    """Browsers' form posts accept text/html; curl (*/*) and the page's fetch() get JSON."""
    return "text/html" in request.headers.get("accept", "")


def query_thumbnail(image: Image.Image) -> str:
    """A small data: URL of the query, so the no-JS results page can show what was searched."""
    thumb = image.copy()
    thumb.thumbnail((QUERY_THUMBNAIL_PX, QUERY_THUMBNAIL_PX))
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def render_search_page(request: Request, status_code: int = 200, **context: Any):
    """The page, with the chosen collection (default: the default one) selected."""
    service = request.app.state.service
    chosen = service.collections.get(context.pop("collection", None) or DEFAULT, service.default)
    info = presenters.info(chosen)
    return templates.TemplateResponse(
        request,
        "search.html",
        {
            "collections": [presenters.summary(c) for c in service.collections.values()],
            "collection": info,
            "images": info.images,
            "model": info.model,
            "problem": info.detail,
            "search_requires_key": request.app.state.settings.search_requires_key,
            "url_search": request.app.state.settings.url_search,
            "accept": formats.accept_attribute(),
            "format_list": formats.described(),
            **context,
        },
        status_code=status_code,
    )


def render_duplicates_page(
    request: Request,
    found,
    images: int,
    limit: int,
    filters: str | None = None,
    decisions: list | None = None,
):
    """One page of groups to review, with links to the previous and next pages at the same
    threshold and filters, and the latest decisions (to undo)."""
    service = request.app.state.service
    summary = presenters.summary(service.get(found.collection))

    def page(offset: int) -> str:
        # relative (the query only): never the Host header's, whoever sent it; works under a prefix
        return "?" + request.url.include_query_params(offset=offset, limit=limit).query

    shown_to = found.offset + len(found.groups)
    return templates.TemplateResponse(
        request,
        "duplicates.html",
        {
            "found": found,
            "images": images,
            "model": summary.model,
            "members": found.images_in_groups,
            "filters": filters or "",
            "decisions": decisions or [],
            "threshold_given": "threshold" in request.query_params,
            "previous": page(max(0, found.offset - limit)) if found.offset else None,
            "next": page(shown_to) if shown_to < found.total else None,
        },
    )


def render_duplicates_pending(request: Request, collection: str, pending: DuplicatesPending):
    """The duplicates page while the collection's pass runs: how far it has got, reloading
    itself (202, as the JSON answer)."""
    service = request.app.state.service
    summary = presenters.summary(service.get(collection))
    return templates.TemplateResponse(
        request,
        "duplicates_pending.html",
        {
            "collection": collection,
            "images": summary.images,
            "model": summary.model,
            "phase": pending.phase,
            "done": pending.done,
            "total": pending.total,
            "retry_after": PASS_RETRY_AFTER_S,
        },
        status_code=pending.status,
        headers=dict(pending.headers),
    )
