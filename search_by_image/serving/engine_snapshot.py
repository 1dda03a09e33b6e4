"""A request's view of a collection stored in a vector engine (milvus_store.py).

Shaped as the embedded `Snapshot` is, so the routes, the presenters and serving/search.py serve
both alike: `EngineStore` answers what they read of a store (its manifest, whitening, paths of
results, whether a path is indexed, its file's fingerprint, search), searching the engine; an
`EngineFilter` stands for a request's filters, which the engine applies inside its search;
`EngineMetadata` gives the result rows and column kinds from the engine's `meta` field. Nothing
is held per image in the replica: every replica reads the same engine, so each sees the others'
writes (milvus_store.py says when).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np

from search_by_image.catalog.filters import Condition, check_filters
from search_by_image.catalog.locations import Location
from search_by_image.catalog.metadata import ColumnInfo, Kind
from search_by_image.errors import UnknownImage
from search_by_image.index.disk import Manifest
from search_by_image.index.live_store import LiveStore
from search_by_image.index.milvus_filters import META_FIELD
from search_by_image.index.milvus_store import MilvusStorage
from search_by_image.index.whitening import Whitening
from search_by_image.serving.snapshot import Hits, Snapshot


@dataclasses.dataclass(frozen=True)
class EngineFilter:
    """A request's filters, checked against the columns and applied by the engine."""

    storage: MilvusStorage
    conditions: dict[str, Condition]

    def __len__(self) -> int:
        """Images that pass (the `matched` of a response): one count in the engine."""
        return self.storage.count(self.conditions)

    @functools.cached_property
    def ids(self) -> np.ndarray:
        """The ids that pass, listed by the engine (the duplicates page in a filter's scope)."""
        return self.storage.ids(self.conditions)

    def tolist(self) -> list[int]:
        """As the embedded filter's id array answers it (duplicate_review.py)."""
        return self.ids.tolist()

    def tobytes(self) -> bytes:
        return self.ids.tobytes()


class EngineStore:
    """What a request reads of a store, answered by the engine (see the module's docstring)."""

    search_device = "milvus"

    def __init__(
        self, storage: MilvusStorage, manifest: Manifest, whitening: Whitening | None, location: Location
    ):
        self.storage = storage
        self.whitening = whitening
        self.manifest = manifest
        self.images_dir = location.images_dir
        self._paths: dict[int, str] = {}

    @property
    def version(self) -> str:
        """The model's generation: the engine's rows change without a new snapshot."""
        return f"{self.manifest.generation}:engine"

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, int) and bool(self.storage.rows([image_id], ["id"]))

    def id_of(self, path: str) -> int | None:
        return self.storage.id_of_path(path)

    def fingerprint(self, path: str) -> tuple[int, int] | None:
        """(size, mtime_ns) of the shared file, read when asked (the engine keeps no files)."""
        try:
            info = (self.images_dir / path).stat()
        except OSError:
            return None
        return info.st_size, info.st_mtime_ns

    def fingerprint_of(self, path: str) -> tuple[int, int]:
        found = self.fingerprint(path)
        if found is None:
            raise KeyError(path)
        return found

    def __len__(self) -> int:
        return self.storage.count()

    def searchable(self, vectors: np.ndarray) -> np.ndarray:
        vectors = self.whitening(vectors) if self.whitening is not None else vectors
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def search(
        self, queries: np.ndarray, k: int, allowed: EngineFilter | None = None, exclude: Sequence[int] = ()
    ) -> list[list[tuple[int, float]]]:
        where = allowed.conditions if allowed is not None else None
        found, paths = self.storage.search_with_paths(self.searchable(queries), k, where, exclude=exclude)
        self._paths.update(paths)
        return found

    def searchable_vectors(self, ids: Iterable[int]) -> np.ndarray:
        """The stored vectors of these ids (already searchable), in their order: one round trip
        (query expansion re-scores its DEPTH results with them)."""
        ids = [int(i) for i in ids]
        stored = self.storage.vectors(ids)
        blank = np.zeros(self.dim, np.float32)  # deleted since the search (by any replica): scores 0
        return np.stack([stored.get(i, blank) for i in ids]) if ids else np.zeros((0, self.dim), np.float32)

    @property
    def dim(self) -> int:
        """The stored vectors' length (the whitening's, else the embedder's)."""
        return self.whitening.dims if self.whitening is not None else self.manifest.embedder.dim

    def path_of(self, image_id: int) -> str:
        path = self._paths.get(image_id)
        if path is None:
            row = self.storage.rows([image_id], ["path"]).get(image_id)
            if row is None:
                raise KeyError(image_id)
            path = self._paths[image_id] = row["path"]
        return path

    def place(self, device: str) -> None:
        """The engine searches where it runs: nothing to place here."""


class EngineMetadata:
    """Result rows and column kinds from the engine's `meta` field (the kinds recorded when the
    collection was exported, and any column an add brought since)."""

    def __init__(self, storage: MilvusStorage):
        self.storage = storage

    @property
    def kinds(self) -> dict[str, Kind]:
        return self.storage.kinds

    @property
    def columns(self) -> list[str]:
        return list(self.storage.kinds)

    @property
    def key(self) -> None:
        """Images are named by the engine's `path` field, not by a metadata column."""
        return None

    @property
    def described(self) -> list[ColumnInfo]:
        return [ColumnInfo(name=name, kind=kind) for name, kind in self.storage.kinds.items()]

    def rows_for(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        rows = self.storage.rows(list(ids), [META_FIELD])
        return {i: dict(row.get(META_FIELD) or {}) for i, row in rows.items()}

    def for_id(self, image_id: int) -> dict[str, Any]:
        return self.rows_for([image_id]).get(int(image_id), {})


@dataclasses.dataclass(frozen=True)
class EngineSnapshot(Snapshot):
    """A Snapshot whose store and metadata are the engine's (see the module's docstring)."""

    def allowed(self, conditions: dict[str, Condition]) -> Any:
        if not conditions:
            return None
        check_filters(conditions, self.metadata.kinds)
        return EngineFilter(self._engine.storage, conditions)

    @property
    def _engine(self) -> EngineStore:
        return cast(EngineStore, self.store)

    def similar(self, image_id: int, k: int, allowed: Any = None, offset: int = 0) -> tuple[str, Hits]:
        """More like this: the image's stored vector searched in the engine, itself left out."""
        engine = self._engine
        stored = engine.storage.vectors([image_id])
        if image_id not in stored:
            raise UnknownImage(f"collection {self.name!r} has no image with id {image_id}")
        where = allowed.conditions if allowed is not None else None
        found, paths = engine.storage.search_with_paths(
            stored[image_id][None], k, where, offset=offset, exclude=[image_id]
        )
        engine._paths.update(paths)
        matched = None if allowed is None else len(allowed)
        return engine.path_of(image_id), Hits(self, found[0], matched, 0.0, 0.0)


def engine_snapshot(snapshot_fields: dict[str, Any], store: EngineStore) -> EngineSnapshot:
    """An EngineSnapshot over `store` (the typed fields of Snapshot typed as the embedded ones:
    the engine's objects answer the same reads)."""
    return EngineSnapshot(
        store=cast(LiveStore, store),
        metadata=cast(Any, EngineMetadata(store.storage)),
        **snapshot_fields,
    )
