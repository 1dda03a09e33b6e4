"""Prometheus metrics, served at GET /metrics (prometheus-client's text format).

HTTP requests are counted and timed by prometheus-fastapi-instrumentator under its standard names
(`http_requests_total`, `http_request_duration_seconds`...), with labels from closed sets: the
route's template (`/collections/{name}/images`, `none` for no route) and a standard method
(`other` for any invented one), so no request can add series. The service's own metrics (`sbi_*`)
are process-wide, as prometheus-client keeps them; what describes the collections (images, queue
depth) is read from the live services when scraped (serving/collection_metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPMethod

from prometheus_client import Counter, Histogram
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics
from starlette.applications import Starlette

#: Seconds: from under a millisecond (a search over a small index) to the 12 MP decodes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_METHODS = frozenset(HTTPMethod)


def _standard_http_metrics() -> Callable[[http_metrics.Info], None]:
    """The instrumentator's HTTP metrics with the service's latency buckets per route; made once
    per process, as the instrumentator registers nothing for a second app."""
    record = http_metrics.default(latency_lowr_buckets=LATENCY_BUCKETS)
    if record is None:
        raise RuntimeError("prometheus-fastapi-instrumentator's HTTP metrics are already registered")
    return record


_HTTP = _standard_http_metrics()
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
REJECTION_REASONS = ("too_many_bytes", "too_slow", "empty", "not_image", "corrupt", "too_many_pixels", "busy")
for _reason in REJECTION_REASONS:
    REJECTED_UPLOADS.labels(_reason)


def _closed_labels(info: http_metrics.Info) -> None:
    """Records `info` with its method and route from closed sets. The instrumentator labels any
    method as sent, and a path that answers with a trailing-slash redirect by the raw path; a
    request the router matched to no route or mount has no `route` or `endpoint` in its scope."""
    if info.method not in _METHODS:
        info.method = "other"
    scope = info.request.scope
    if "route" not in scope and "endpoint" not in scope:
        info.modified_handler = "none"
    _HTTP(info)


def instrument(app: Starlette) -> None:
    """Counts and times every HTTP answer of `app` by route template, method and status code."""
    Instrumentator(should_group_status_codes=False).add(_closed_labels).instrument(app)
