"""What serving needs from a collection's vector storage, whatever holds the vectors.

The embedded default keeps them in the collection's saved folder (store.py, FAISS, one machine);
a collection may instead live in a distributed vector engine (milvus_store.py) that several
service replicas share. `VectorStorage` is the surface both offer a served collection: search
with a filter applied inside the search, the stored vectors of some ids, add, delete, count, and
the list of ids (a duplicates pass searches each one's stored vector). `StorageAddress` is where
a collection says its vectors are (`--store milvus://host:19530`, setting SBI_STORE; empty: the saved folder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np

from search_by_image.catalog.filters import Condition

#: (id, score) pairs per query, best first
Hits = list[list[tuple[int, float]]]

#: stores a collection may name; "" is the embedded saved folder
SCHEMES = ("milvus",)
DEFAULT_MILVUS_PORT = 19530


@dataclass(frozen=True)
class StorageAddress:
    """Where a collection's vectors live: `scheme://host:port` (`milvus://127.0.0.1:19530`)."""

    scheme: str
    host: str
    port: int

    @property
    def uri(self) -> str:
        """The address the engine's client connects to (gRPC over http)."""
        return f"http://{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> StorageAddress | None:
        """None for the embedded default ("", "local", "faiss"); ValueError names what is wrong."""
        text = text.strip()
        if text.lower() in ("", "local", "faiss", "embedded"):
            return None
        parts = urlsplit(text)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"store {text!r}: expected milvus://host:port, or nothing for the saved folder")
        if not parts.hostname:
            raise ValueError(f"store {text!r}: no host (milvus://host:19530)")
        try:
            port = parts.port or DEFAULT_MILVUS_PORT
        except ValueError:
            raise ValueError(f"store {text!r}: the port is not a number") from None
        return cls(parts.scheme, parts.hostname, port)


@dataclass(frozen=True)
class StorageHealth:
    """For /health: where the collection's vectors live and whether that place answers."""

    kind: str
    where: str
    answers: bool
    count: int | None = None
    problem: str | None = None


class VectorStorage(Protocol):
    """A collection's vectors, ids, paths and metadata, as serving uses them."""

    def search(
        self,
        queries: np.ndarray,
        k: int,
        where: Mapping[str, Condition] | None = None,
        offset: int = 0,
        exclude: Sequence[int] = (),
        timeout: float | None = None,
    ) -> Hits:
        """Results `offset` to `offset + k` per query, among the images `where` lets through
        (filtered inside the engine's search), leaving out the `exclude` ids; within `timeout`
        seconds (default: the storage's, for a request)."""
        ...

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored (searchable) vectors of these ids; unknown ids are left out."""
        ...

    def add(
        self,
        ids: Sequence[int],
        vectors: np.ndarray,
        paths: Sequence[str],
        metadata: Sequence[Mapping[str, Any]],
    ) -> None:
        """Store these rows; returns once the engine has acknowledged them (durable)."""
        ...

    def delete(self, ids: Sequence[int]) -> None: ...

    def count(self) -> int: ...

    def ids(self, where: Mapping[str, Condition] | None = None, timeout: float | None = None) -> np.ndarray:
        """Every stored id (those `where` lets through), sorted: the images a duplicates pass
        searches the engine's own k-NN of (never an N x N pass)."""
        ...

    def health(self) -> StorageHealth: ...
