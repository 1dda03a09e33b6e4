"""GET / (what this service is) and GET /health (for probes and people)."""

from fastapi import APIRouter

from search_by_image import __version__
from search_by_image.deps import ServiceDep
from search_by_image.schemas import Health, ServiceInfo

router = APIRouter(tags=["service"])

ENDPOINTS = {
    "GET /": "this information",
    "GET /search": "the upload page",
    "POST /search": "multipart `file` (+ optional `k`, 1-100): the most similar images as JSON",
    "GET /images/{path}": "an indexed image",
    "GET /health": "status, number of indexed images, model",
    "GET /docs": "interactive API documentation",
}


@router.get("/", response_model=ServiceInfo, summary="Welcome and API overview")
def root(service: ServiceDep) -> ServiceInfo:
    return ServiceInfo(
        name="search-by-image",
        version=__version__,
        images=service.size,
        model=service.model,
        endpoints=ENDPOINTS,
    )


@router.get("/health", response_model=Health, summary="Liveness and index status")
def health(service: ServiceDep) -> Health:
    return Health(
        status="ok" if service.store is not None else "no_index",
        images=service.size,
        model=service.model,
        device=str(service.embedder.device) if service.embedder else None,
        detail=service.problem,
    )
