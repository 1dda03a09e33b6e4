"""The local engine: worker processes index like one process, and a dead worker is a clear error."""

import logging
import os

import numpy as np
import pytest
from helpers import PHOTOS, copy_photos, make_settings

from search_by_image.images.decoding import decode_budget
from search_by_image.index.store import IndexStore
from search_by_image.indexing import local_engine
from search_by_image.indexing.indexer import update_index

FOUR = ["chelsea.jpg", "coffee.jpg", "dog.jpg", "rocket.jpg"]


def test_worker_processes_index_like_one_process(tmp_path, monkeypatch, caplog):
    """Two worker processes (chunks of 4 images here, so both get work) store the same rows in
    the same order as one process, and an unreadable file is reported once."""
    monkeypatch.setattr(local_engine, "CHUNK", 4)
    stores = []
    for name, workers in (("one", 0), ("two", 2)):
        settings = make_settings(tmp_path / name, workers=workers)
        copy_photos(settings.images_dir)
        (settings.images_dir / "notes.jpg").write_text("not a photo")
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            report = update_index(settings, progress=False)
        assert [path for path, _ in report.skipped] == ["notes.jpg"]
        assert sum("Skipped notes.jpg" in r.getMessage() for r in caplog.records) == 1
        store = IndexStore.load(settings.saved_dir)
        assert len(store.paths) == len(store.features) == store.index.ntotal
        stores.append(store)
    one, two = stores
    assert one.paths == two.paths and len(one.paths) == len(os.listdir(PHOTOS))
    assert np.allclose(one.features, two.features, atol=1e-4)


def test_workers_start_clean_of_the_callers_state(tmp_path, monkeypatch):
    """Workers never inherit what the calling process holds at that moment: here the whole decode
    budget, as large uploads decoding in the service would while its background indexer starts
    workers. Forked from the caller, every worker saw the budget used up and skipped every photo
    as busy (and a lock held by another of its threads could hang them outright)."""
    monkeypatch.setattr(local_engine, "CHUNK", 4)
    settings = make_settings(tmp_path, workers=2)
    copy_photos(settings.images_dir)
    with decode_budget.hold(decode_budget.capacity):
        report = update_index(settings, progress=False)
    assert report.skipped == []
    assert len(IndexStore.load(settings.saved_dir).paths) == len(os.listdir(PHOTOS))


def _die(*_):
    os._exit(1)  # as the kernel's out-of-memory killer would end a worker


def test_a_worker_process_that_dies_is_a_clear_error_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setattr(local_engine, "CHUNK", 2)
    monkeypatch.setattr(local_engine, "_embed_chunk", _die)
    settings = make_settings(tmp_path, workers=2)
    copy_photos(settings.images_dir, FOUR)
    with pytest.raises(RuntimeError, match="worker process died.*run again to resume"):
        update_index(settings, progress=False)
    assert not (settings.saved_dir / "manifest.json").exists()


def test_tasks_shrink_towards_the_end_so_processes_finish_together():
    pending = {0: [f"a{i}" for i in range(256)], 1: [f"b{i}" for i in range(43)]}
    chunks = local_engine.plan_chunks(pending, processes=2, smallest=16)
    assert [p for _, chunk in chunks for p in chunk] == pending[0] + pending[1]  # all, in order
    assert all(set(chunk) <= set(pending[number]) for number, chunk in chunks)  # within a shard
    sizes = [len(chunk) for _, chunk in chunks]
    assert sizes[0] == local_engine.CHUNK and max(sizes[-3:]) <= 16
