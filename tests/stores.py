"""Saved indexes and live writes for tests: random unit descriptors under the default spec."""

from __future__ import annotations

import numpy as np

from config import Settings
from search_by_image.catalog.database import transaction
from search_by_image.index import live_log
from search_by_image.index.disk import writer_lock
from search_by_image.index.store import IndexStore
from search_by_image.model.embedder import EmbedderSpec

SPEC = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0"))


def unit_rows(count: int, seed: int, dim: int = SPEC.dim) -> np.ndarray:
    features = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def random_store(count: int, seed: int, **options) -> IndexStore:
    paths = [f"set{seed}/img{i}.jpg" for i in range(count)]
    return IndexStore.create(SPEC, unit_rows(count, seed), paths, {p: (1, 2) for p in paths}, **options)


def clustered_ivf_store(count: int, seed: int, spread: float) -> tuple[IndexStore, np.ndarray]:
    """`count` 64-d unit vectors around 50 centres (`spread`: their noise) in the IVF index a
    large collection gets (a tuned nprobe), and the vectors."""
    from search_by_image.index import choice

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, 64))
    features = centres[rng.integers(0, 50, count)] + spread * rng.normal(size=(count, 64))
    features = (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)
    paths = [f"{i}.jpg" for i in range(count)]
    index_type = choice.choose_index_type(count, 64, flat_max_cost=1e5)
    spec = SPEC.model_copy(update={"dim": 64})
    return IndexStore.create(
        spec, features, paths, dict.fromkeys(paths, (1, 1)), index_type=index_type
    ), features


def commit(store: IndexStore, folder) -> None:
    with writer_lock(folder):
        store.save(folder)


def log_adds(conn, store, vectors, names):
    with transaction(conn):
        first = live_log.take_ids(conn, len(names), store.manifest.next_id)
        live_log.append_adds(conn, first, names, vectors, [(1, 1)] * len(names))
    return list(range(first, first + len(names)))


def log_delete(conn, image_id, path):
    with transaction(conn):
        live_log.append_deletes(conn, [(image_id, path)])


def as_saved_format(folder, version: int) -> None:
    """Rewrite a committed folder as an older format wrote it: format 2 kept the fingerprints in
    the manifest (path -> [size, mtime_ns]), format 1 had no ids.npy either."""
    import json

    from search_by_image.layout import FINGERPRINTS_FILE, IDS_FILE, MANIFEST_FILE, PATHS_FILE

    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    paths = (folder / PATHS_FILE).read_text(encoding="utf-8").splitlines()
    fingerprints = np.load(folder / FINGERPRINTS_FILE)
    manifest["files"] = {p: [int(s), int(m)] for p, (s, m) in zip(paths, fingerprints)}
    manifest["format"] = version
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    (folder / FINGERPRINTS_FILE).unlink()
    if version < 2:
        (folder / IDS_FILE).unlink()
