"""The service's domain errors: what went wrong in words a user can act on, and its HTTP answer.

Every error a user may be told about derives from `SearchByImageError`, whose `status` and
`headers` are the HTTP response the app's one handler (`search_by_image.api.app`) sends with the
message as `detail`. Routes and the modules under them raise these and map nothing by hand; the
command line (`with_faiss.py`) prints them as one line and lets anything else (a bug, a library
failure) keep its traceback. Each also derives from the builtin it used to be (RuntimeError,
LookupError...), so existing `except` clauses keep working.

`InvalidField` errors name a request field: the handler answers them in the shape of FastAPI's
own 422 (`detail[0].loc`), so a client handles them like any other validation error.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Seconds a client should wait when another writer (an indexer run) holds the collection.
BUSY_INDEX_RETRY_AFTER_S = 10
#: Seconds a client is told to wait when the decode budget stayed full (decoding.decode_budget).
BUSY_DECODE_RETRY_AFTER_S = 5


class SearchByImageError(Exception):
    """Base class: the message is safe to show; `status` and `headers` are its HTTP answer."""

    status: int = 500
    headers: Mapping[str, str] = {}


# -- 401/403/429: who is calling, and how often --------------------------------------------------


class Unauthorized(SearchByImageError):
    """No API key where one is needed, or an unknown or revoked one."""

    status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(SearchByImageError):
    """A key without the scope this needs."""

    status = 403


class TooManyRequests(SearchByImageError):
    """Over the client's rate limit; `retry_after` seconds until the next request is let in."""

    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


# -- 404: what the request names does not exist ------------------------------------------------


class InvalidName(SearchByImageError, ValueError):
    """A collection name that cannot be one (catalog.validate_name)."""

    status = 404


class UnknownCollection(SearchByImageError, LookupError):
    status = 404


class UnknownImage(SearchByImageError, LookupError):
    status = 404


class NotIndexed(SearchByImageError, LookupError):
    """A file URL that names no indexed image (or one no longer on disk)."""

    status = 404


class NoLongerReadable(SearchByImageError):
    """An indexed image that cannot be decoded any more (its file changed since it was indexed)."""

    status = 422


# -- 503: not now -------------------------------------------------------------------------------


class NoIndex(SearchByImageError, RuntimeError):
    """Search is impossible until an index is built; the message says how."""

    status = 503


#: Seconds a client is told to wait while the service loads a collection it has just started with.
LOADING_RETRY_AFTER_S = 1


class Loading(NoIndex):
    """The service has just started and is still loading this collection's index and model
    (service.py loads them in the background): retry in a moment."""

    headers = {"Retry-After": str(LOADING_RETRY_AFTER_S)}


#: Seconds a client is told to wait while a collection's duplicates pass runs.
PASS_RETRY_AFTER_S = 5


class DuplicatesPending(SearchByImageError):
    """The collection's duplicates pass is still running (minutes on a big collection): how far
    it has got (`phase`: "neighbours", each image searched; "pairs", the pairs checked); the
    request was accepted, ask again."""

    status = 202
    headers = {"Retry-After": str(PASS_RETRY_AFTER_S)}

    def __init__(self, phase: str, done: int, total: int):
        self.phase, self.done, self.total = phase, done, total
        what = "images searched for their neighbours" if phase == "neighbours" else "pairs checked"
        super().__init__(f"Finding duplicates: {done:,} of {total:,} {what}; ask again in a few seconds")


class IndexMissing(SearchByImageError, RuntimeError):
    status = 503


class IndexCorrupt(SearchByImageError, RuntimeError):
    status = 503


class IndexBusy(SearchByImageError, RuntimeError):
    """Another writer holds the folder (usually `with_faiss.py` updating it)."""

    status = 503
    headers = {"Retry-After": str(BUSY_INDEX_RETRY_AFTER_S)}


class BatcherClosed(SearchByImageError, RuntimeError):
    """The query batcher was closed (its service stopped): nothing will embed this query."""

    status = 503


class WeightsUnavailable(SearchByImageError, RuntimeError):
    """A model's weights cannot be had (no cache, no network, a file that does not fit)."""

    status = 503


#: Seconds a client is told to wait when a collection's vector engine does not answer.
ENGINE_RETRY_AFTER_S = 5


class EngineUnavailable(SearchByImageError, RuntimeError):
    """The vector engine a collection is stored in (Milvus) did not answer in time or refused the
    connection; the message names it. The service retries on the next request by itself."""

    status = 503
    headers = {"Retry-After": str(ENGINE_RETRY_AFTER_S)}

    def __init__(self, engine: str, message: str):
        super().__init__(f"vector engine {engine} unavailable: {message}; retry in a moment")
        self.engine = engine
        self.headers = {"Retry-After": str(ENGINE_RETRY_AFTER_S), "X-Unavailable-Engine": engine}


class EngineFailed(SearchByImageError, RuntimeError):
    """The vector engine answered with an error it will not get over by itself (a collection of
    another dimension, a schema it does not have)."""

    status = 502


# -- the collection's state or folders ----------------------------------------------------------


class StorageError(SearchByImageError, RuntimeError):
    """The collection's folders cannot be written (read-only mount, permissions, disk full)."""

    status = 507


class Rebuilt(SearchByImageError, RuntimeError):
    """The collection was rebuilt with another model while an upload was being embedded."""

    status = 409


class Conflict(SearchByImageError, RuntimeError):
    """What the request acts on changed since the client saw it (a duplicate group that gained or
    lost an image, a file back at a restored image's path): reload and decide again."""

    status = 409


class SpecMismatch(SearchByImageError, RuntimeError):
    """The settings ask for another model or preprocessing than the collection was built with."""

    status = 409


# -- the command line and the settings ----------------------------------------------------------


class ImagesFolderMissing(SearchByImageError, FileNotFoundError):
    """An images folder that does not exist, or a new collection without one."""


class SetupError(SearchByImageError, RuntimeError):
    """Settings this machine cannot honour (a device, runtime or precision it lacks)."""


class UnknownModel(SearchByImageError, ValueError):
    pass


class IndexingInterrupted(SearchByImageError, RuntimeError):
    """An indexer run stopped part way (what it finished is kept: run again to resume)."""


# -- the request ---------------------------------------------------------------------------------


class UploadRejected(SearchByImageError):
    """An uploaded file that cannot be used: empty, too large, not an image, corrupt, busy."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})

    def reworded(self, message: str) -> UploadRejected:
        """The same refusal with another message (which file of several, say)."""
        return UploadRejected(self.status, message, self.headers)


class UrlRefused(SearchByImageError):
    """A query image's URL that the service will not or cannot fetch: searching by URL is off,
    a scheme other than http(s), an address it must not reach (loopback, private, cloud
    metadata...), too many redirects, a body over the size limit (4xx), or the fetch failed on
    the network (502) or took too long (504)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class TooLarge(SearchByImageError):
    """A request over a per-request limit (files, pixels)."""

    status = 413


class InvalidField(SearchByImageError, ValueError):
    """A form or query field the service cannot use; answered like FastAPI's own 422s.

    `location` is the field, then the part of it at fault (a filter's column, say)."""

    status = 422

    def __init__(self, location: tuple[str, ...], message: str):
        super().__init__(f"{location[-1]}: {message}" if len(location) > 1 else message)
        self.location = location
        self.message = message


class FilterError(InvalidField):
    """A filter the collection cannot apply; `column` is None for the whole `filters` field."""

    def __init__(self, column: str | None, message: str):
        super().__init__(("filters", column) if column else ("filters",), message)
        self.column = column


class BoxError(InvalidField):
    """A `box` that is not four numbers inside the image."""

    def __init__(self, message: str):
        super().__init__(("box",), message)


class MetadataRejected(InvalidField):
    """A metadata row an add cannot write; `column` names the culprit."""

    def __init__(self, column: str, message: str):
        super().__init__(("metadata", column), message)
        self.column = column


class JsonTooLarge(InvalidField):
    """JSON text over the size limit (json_limits)."""

    def __init__(self, field: str, message: str):
        super().__init__((field,), message)
