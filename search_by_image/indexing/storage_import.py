"""A collection stored in Milvus brought back into its saved folder, the embedded default
(`python -m search_by_image.cli.storage import --from milvus://HOST:PORT`; also the first step of
`with_faiss.py --store` on a collection already there, so that its run starts from the engine's
rows).

The engine holds searchable vectors (whitened: not the raw features the saved index keeps), so
the saved base is brought to the engine's rows rather than rebuilt from them: the images the
engine no longer has are deleted, those it gained (added through a replica: their files are in
the shared images folder) are embedded from their files and appended under the engine's ids, and
each image whose metadata in the engine differs from the saved row gets the engine's (kept by
later CSV imports, as an API write is). The result is one new base, committed atomically under
the collection's writer lock; cli/storage.py then compares it with the engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from search_by_image.catalog import metadata_store
from search_by_image.catalog.database import transaction
from search_by_image.catalog.locations import Location
from search_by_image.catalog.metadata import Kind
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.images.decoding import UnreadableImage, open_rgb
from search_by_image.index import milvus_filters
from search_by_image.index.disk import writer_lock
from search_by_image.index.live_store import load_live
from search_by_image.index.milvus_filters import META_FIELD
from search_by_image.index.milvus_store import BATCH, MilvusStorage
from search_by_image.index.store import IndexStore
from search_by_image.model.embedder import Embedder
from search_by_image.settings import Settings

log = logging.getLogger(__name__)

#: images embedded at once (those the engine gained since the export: usually few)
EMBED_BATCH = 32


@dataclass
class Imported:
    """What an import changed in the saved folder."""

    kept: int = 0
    added: int = 0
    deleted: int = 0
    metadata: int = 0
    #: engine rows whose file is gone or unreadable: left out of the saved index
    missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"saved folder brought to the engine: {self.kept} kept, {self.added} added (embedded "
            f"from their files), {self.deleted} deleted, {self.metadata} metadata rows from the "
            f"engine, {len(self.missing)} without a readable file"
        )


def engine_rows(storage: MilvusStorage) -> dict[int, tuple[str, dict[str, Any]]]:
    """Every engine row's path and metadata, by id (BATCH ids a round trip)."""
    ids = storage.ids().tolist()
    found: dict[int, tuple[str, dict[str, Any]]] = {}
    for start in range(0, len(ids), BATCH):
        for image_id, row in storage.rows(ids[start : start + BATCH], ["path", META_FIELD]).items():
            found[image_id] = (row["path"], dict(row.get(META_FIELD) or {}))
    return found


def import_collection(
    settings: Settings, location: Location, storage: MilvusStorage, lock_wait: float = 60.0
) -> tuple[IndexStore, Imported]:
    """The saved folder of `location` brought to the engine's rows (see the module); returns
    the committed store."""
    report = Imported()
    with writer_lock(location.saved_dir, wait=lock_wait):
        live, _ = load_live(location.saved_dir)
        base = live.folded() if live.delta_size else live.base
        rows = engine_rows(storage)
        saved = {int(i): p for i, p in zip(base.ids, base.paths)}
        gone = [i for i, path in saved.items() if rows.get(i, ("",))[0] != path]
        new = [(i, path) for i, (path, _) in rows.items() if saved.get(i) != path]
        features, ids, paths, report.missing = _embedded(settings, base, location, new)
        files = {p: _fingerprint(location, p) for p in paths}
        store = base.with_changes(gone, features, paths, files, ids, folded_seq=live.seq)
        store.save(location.saved_dir)
        report.kept, report.added, report.deleted = len(saved) - len(gone), len(ids), len(gone)
        report.metadata = _metadata(location, store, rows, gone)
    return store, report


def _embedded(
    settings: Settings, base: IndexStore, location: Location, new: list[tuple[int, str]]
) -> tuple[np.ndarray, list[int], list[str], list[str]]:
    """Raw features of the `new` (id, path) rows from their files; the paths that failed."""
    if not new:
        return np.zeros((0, base.manifest.embedder.dim), np.float32), [], [], []
    embedder = Embedder.configured(base.manifest.embedder, settings)
    prepared, ids, paths, missing = [], [], [], []
    for image_id, path in new:
        try:
            file, size = location.images_dir / path, embedder.preprocessing.resized_size
            image = open_rgb(file, settings.max_image_pixels, size)
        except (UnreadableImage, OSError) as exc:
            log.warning("not imported: %s (%s)", path, exc)
            missing.append(path)
            continue
        prepared.append(embedder.preprocessing(image))
        ids.append(image_id)
        paths.append(path)
    empty = np.zeros((0, base.manifest.embedder.dim), np.float32)
    batches = [
        embedder.embed_prepared(prepared[s : s + EMBED_BATCH]) for s in range(0, len(prepared), EMBED_BATCH)
    ]
    return np.concatenate([empty, *batches]), ids, paths, missing


def _fingerprint(location: Location, path: str) -> tuple[int, int]:
    info = (location.images_dir / path).stat()
    return info.st_size, info.st_mtime_ns


def _metadata(
    location: Location, store: IndexStore, rows: dict[int, tuple[str, dict[str, Any]]], gone: list[int]
) -> int:
    """The engine's metadata where it differs from the saved row (written through a replica);
    the rows of deleted images removed. Returns the rows written."""
    view = MetadataView(location.saved_dir)
    kinds = view.kinds
    current = view.rows_for(int(i) for i in store.ids)
    conn = view.connection()
    written = 0
    with transaction(conn):
        metadata_store.create_tables(conn)
        metadata_store.remove(conn, gone)
        for image_id in (int(i) for i in store.ids):
            path, meta = rows.get(image_id, (None, {}))
            if path is not None and _as_stored(meta, kinds) != _as_stored(current.get(image_id, {}), kinds):
                metadata_store.put(conn, image_id, path, _as_saved(meta, kinds))
                written += 1
    return written


def _as_stored(row: dict[str, Any], kinds: dict[str, Kind]) -> dict[str, Any]:
    typed = {c: milvus_filters.stored_value(v, kinds.get(c, "text")) for c, v in row.items()}
    return {c: v for c, v in typed.items() if v is not None}


def _as_saved(meta: dict[str, Any], kinds: dict[str, Kind]) -> dict[str, Any]:
    """The engine's cells as the saved metadata takes them (dates as ISO text, not seconds)."""
    return {
        c: datetime.fromtimestamp(v, UTC).isoformat()
        if kinds.get(c) == "date" and isinstance(v, float)
        else v
        for c, v in meta.items()
    }
