"""The connection to a Milvus server shared by a collection's calls: every failure to reach it
(refused, timed out, starting, a collection not loaded after a restart) raised as
`EngineUnavailable` (503 with Retry-After, naming the engine), the client dropped so the next
call connects again: a replica recovers by itself when the engine returns."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from search_by_image.errors import EngineFailed, EngineUnavailable
from search_by_image.index.vector_storage import StorageAddress
from search_by_image.lazy_imports import LazyModule

if TYPE_CHECKING:
    import pymilvus
else:
    pymilvus = LazyModule("pymilvus")

#: seconds a call may take (a search, a batch insert), and /health's count, before the engine
#: counts as down
CALL_TIMEOUT_S, HEALTH_TIMEOUT_S = 10.0, 2.0
#: our own subchannels, retried every second at most: gRPC's shared pool keeps a refused address
#: failing for up to two minutes after the engine is back
GRPC_OPTIONS = {
    "grpc.use_local_subchannel_pool": 1,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 1000,
}
_CONNECTION_WORDS = re.compile(r"unavailable|deadline|connect|timeout|timed out|not ready|closed", re.I)


class MilvusConnection:
    """One client to one Milvus collection, made on first use and again after a failure."""

    def __init__(self, address: StorageAddress, collection: str, timeout: float, uri: str | None):
        self.address = address
        #: where the client connects: the address, or a milvus-lite file (tests, one process)
        self.uri = uri or address.uri
        self.collection = collection
        self.timeout = timeout
        self._client: pymilvus.MilvusClient | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> str:
        return f"Milvus at {self.address.host}:{self.address.port}"

    @contextlib.contextmanager
    def _call(self) -> Iterator[pymilvus.MilvusClient]:
        """The client, with any failure to reach the engine as EngineUnavailable (the client is
        dropped, so the next call connects again)."""
        try:
            with self._lock:
                if self._client is None:
                    self._client = pymilvus.MilvusClient(
                        uri=self.uri, timeout=self.timeout, dedicated=True, grpc_options=GRPC_OPTIONS
                    )
                client = self._client
            yield client
        except Exception as exc:
            if isinstance(exc, (EngineUnavailable, EngineFailed)):
                raise
            if _unreachable(exc):
                self._drop()
                raise EngineUnavailable(self.engine, _reason(exc)) from exc
            if "not loaded" in _reason(exc).lower():  # an engine restarted without its load state
                self._load_quietly()
                raise EngineUnavailable(self.engine, "loading the collection") from exc
            if isinstance(exc, pymilvus.exceptions.MilvusException):
                raise EngineFailed(f"{self.engine} refused the request: {_reason(exc)}") from exc
            raise

    def probe(self) -> None:
        """EngineUnavailable, naming the engine, unless it answers (within this call's timeout)."""
        with self._call() as client:
            client.list_collections(timeout=self.timeout)

    def _drop(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    close = _drop

    def _load_quietly(self) -> None:
        with contextlib.suppress(Exception), self._lock:
            if self._client is not None:
                self._client.load_collection(self.collection, timeout=self.timeout)


def _unreachable(exc: BaseException) -> bool:
    """An error of reaching the engine (down, starting, too slow), not of the request itself."""
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    grpc = type(exc).__module__.startswith("grpc")
    return grpc or bool(_CONNECTION_WORDS.search(_reason(exc)))


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
