"""GET /metrics: Prometheus' text format (search_by_image.metrics), optionally behind an API key."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from search_by_image.api.deps import Credentials
from search_by_image.errors import Unauthorized

router = APIRouter(tags=["service"])


def metrics_access(request: Request, credentials: Credentials) -> None:
    """With SBI_METRICS_REQUIRES_KEY, any valid key (scope search or admin) may scrape."""
    if not request.app.state.settings.metrics_requires_key:
        return
    if credentials is None or request.app.state.keys.verify(credentials.credentials) is None:
        raise Unauthorized(
            "metrics need an API key (SBI_METRICS_REQUIRES_KEY): send `Authorization: Bearer <key>`"
        )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}},
        401: {"description": "SBI_METRICS_REQUIRES_KEY is on and no valid key was sent"},
    },
)
def metrics(_: Annotated[None, Depends(metrics_access)]) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
