"""Prometheus metrics, served at GET /metrics (prometheus-client's text format).

Counters and histograms are process-wide, as prometheus-client keeps them; what describes the
collections (images, queue depth) is read from the live services when scraped
(serving/collection_metrics.py). Routes are labelled
by their template (`/collections/{name}/images`), never by the raw path, so label values stay few.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Seconds: from under a millisecond (a search over a small index) to the 12 MP decodes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "sbi_http_requests", "HTTP requests answered, by route template and status", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "sbi_http_request_duration_seconds",
    "HTTP request latency, by route",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
DECODE_SECONDS = Histogram("sbi_decode_seconds", "Decoding an uploaded query image", buckets=LATENCY_BUCKETS)
EMBED_SECONDS = Histogram(
    "sbi_embed_seconds", "Embedding a query, waiting in the batcher included", buckets=LATENCY_BUCKETS
)
SEARCH_SECONDS = Histogram(
    "sbi_search_seconds", "Searching the index for a query's neighbours", buckets=LATENCY_BUCKETS
)
BATCH_SIZE = Histogram(
    "sbi_batch_size", "Queries per forward pass of the query batcher", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32)
)
RELOADS = Counter(
    "sbi_index_reloads",
    "Indexes swapped in from disk (new or rewritten), or refused as broken, by collection",
    ["collection", "outcome"],
)
REJECTED_UPLOADS = Counter("sbi_rejected_uploads", "Uploads refused, by reason", ["reason"])
#: Every reason an upload can be refused for, so each series exists (at 0) from the start.
REJECTION_REASONS = ("too_many_bytes", "empty", "not_image", "corrupt", "too_many_pixels", "busy")
for _reason in REJECTION_REASONS:
    REJECTED_UPLOADS.labels(_reason)


def _template(scope: Scope) -> str:
    """The matched route's path template; a mount's path (static files); else `unmatched`."""
    route = scope.get("route")
    if route is not None:
        return route.path
    if scope.get("endpoint") is not None:
        return f"{scope.get('root_path', '')}/{{path}}"
    return "unmatched"


class RequestMetrics:
    """ASGI middleware: counts every HTTP answer and times it, by route template and status."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = _template(scope)
            REQUESTS.labels(scope["method"], template, str(status)).inc()
            REQUEST_SECONDS.labels(scope["method"], template).observe(time.perf_counter() - started)
