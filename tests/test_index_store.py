"""Saved indexes: save/load symmetric, and a crash at any step leaves a loadable, consistent set."""

import os

import numpy as np
import pytest

from config import Settings
from search_by_image import index_store
from search_by_image.embedder import EmbedderSpec
from search_by_image.index_store import (
    PATHS_FILE,
    PREVIOUS_DIR,
    IndexCorrupt,
    IndexMissing,
    IndexStore,
)

SPEC = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0"))


def random_store(count: int, seed: int) -> IndexStore:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(count, SPEC.dim)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    paths = [f"set{seed}/img{i}.jpg" for i in range(count)]
    return IndexStore.create(SPEC, features, paths, {p: (1, 2) for p in paths})


def test_save_then_load_gives_the_same_index(tmp_path):
    store = random_store(20, seed=1)
    store.save(tmp_path)
    loaded = IndexStore.load(tmp_path)
    assert loaded.paths == store.paths
    assert np.array_equal(np.asarray(loaded.features), store.features)
    assert loaded.manifest == store.manifest
    hits = loaded.search(store.features[[7]], k=3)[0]
    assert hits[0][0] == 7 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert not (tmp_path / PREVIOUS_DIR).exists()


def test_search_asks_for_no_more_than_the_index_holds(tmp_path):
    store = random_store(3, seed=2)
    assert len(store.search(store.features[:1], k=100)[0]) == 3


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexMissing, match="with_faiss.py"):
        IndexStore.load(tmp_path)


def test_files_that_disagree_are_refused(tmp_path):
    random_store(5, seed=3).save(tmp_path)
    with open(tmp_path / PATHS_FILE, "a") as handle:
        handle.write("extra.jpg\n")
    with pytest.raises(IndexCorrupt, match="rebuild"):
        IndexStore.load(tmp_path)


def test_crash_while_writing_leaves_the_old_index(tmp_path, monkeypatch):
    old = random_store(5, seed=4)
    old.save(tmp_path)

    def disk_full(*args):
        raise OSError("No space left on device")

    monkeypatch.setattr(index_store.np, "save", disk_full)
    with pytest.raises(OSError):
        random_store(9, seed=5).save(tmp_path)
    assert IndexStore.load(tmp_path).paths == old.paths


@pytest.mark.parametrize("renames_before_crash", [1, 2, 3])
def test_crash_between_renames_loads_the_complete_old_set(tmp_path, monkeypatch, renames_before_crash):
    old = random_store(5, seed=6)
    old.save(tmp_path)
    real_replace, done = os.replace, []

    def crashing_replace(src, dst):
        if len(done) == renames_before_crash:
            raise KeyboardInterrupt("simulated crash")
        done.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(index_store.os, "replace", crashing_replace)
    with pytest.raises(KeyboardInterrupt):
        random_store(9, seed=7).save(tmp_path)
    monkeypatch.setattr(index_store.os, "replace", real_replace)

    assert IndexStore.load(tmp_path).paths == old.paths  # readers use .previous/
    newer = random_store(4, seed=8)
    newer.save(tmp_path)  # the next writer rolls back, then commits
    assert IndexStore.load(tmp_path).paths == newer.paths
    assert not (tmp_path / PREVIOUS_DIR).exists()
