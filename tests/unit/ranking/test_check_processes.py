"""A duplicates pass's checks in worker processes: the same verdicts as on this process' threads,
on real photos and their copies; small passes stay on threads; the workers are gone after."""

import functools
import multiprocessing

import pytest
from helpers import copy_photos, make_settings, write_cat_copies

from search_by_image.catalog import locations
from search_by_image.index.live_store import LiveStore
from search_by_image.index.store import IndexStore
from search_by_image.indexing.indexer import update_index
from search_by_image.ranking import check_processes, pair_checks, verifier
from search_by_image.ranking.check_processes import ProcessChecks
from search_by_image.ranking.duplicates import Neighbours
from search_by_image.ranking.pair_checks import verified_copies


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """The demo photos with a smaller copy, a crop and a mirror of the cat: pairs that are
    copies (one only as a mirror) and pairs that are not."""
    root = tmp_path_factory.mktemp("check-processes")
    settings = make_settings(root)
    copy_photos(settings.images_dir)
    write_cat_copies(settings.images_dir, mirror=True)
    update_index(settings, progress=False)
    store = LiveStore(IndexStore.load(settings.saved_dir))
    checker = verifier.Verifier(locations.find(settings, locations.DEFAULT), 10**8, 10)
    return store, checker


def test_workers_give_the_verdicts_of_this_process(copies):
    store, checker = copies
    ids = [int(i) for i in store.ids]
    pairs = [(a, b, mirror) for a in ids for b in ids if a < b for mirror in (False, True)]
    processes = ProcessChecks(checker.location, checker.max_image_pixels, workers=2, held=64)
    workers = processes.started(store, ahead=1)
    try:
        futures = [workers.submit(*pair) for pair in pairs]  # both workers busy
        found = [future.result() for future in futures]
    finally:
        workers.shutdown()
    assert found == [checker.is_copy(store, *pair) for pair in pairs]
    cat = store.id_of("chelsea.jpg")
    mirror = store.id_of("cat-mirror.jpg")
    assert sum(found) >= 4  # the three cats' copies, and the mirror only as one
    assert found[pairs.index((*sorted((cat, mirror)), True))]
    assert not found[pairs.index((*sorted((cat, mirror)), False))]


def test_a_pass_in_processes_finds_the_copies_a_pass_on_threads_finds(copies, monkeypatch):
    store, checker = copies
    is_copy = functools.partial(checker.is_copy, store)
    monkeypatch.setattr(pair_checks, "AHEAD", 1)
    neighbours = Neighbours.of(store)
    threaded = verified_copies(store, neighbours, is_copy, threads=1)
    monkeypatch.setattr(pair_checks, "MIN_PAIRS", 0)
    processes = ProcessChecks(checker.location, checker.max_image_pixels, workers=1, held=64)
    progress: list[tuple[int, int]] = []
    done = verified_copies(
        store, neighbours, is_copy, processes=processes, progress=lambda *p: progress.append(p)
    )
    assert done.copies == threaded.copies and set(done.implied) == set(threaded.implied)
    assert progress[-1][0] == progress[-1][1] > 0  # counted as it went, to the end
    assert not multiprocessing.active_children()  # the workers shut down with the pass


def test_a_small_pass_stays_on_threads(copies, monkeypatch):
    store, checker = copies
    processes = ProcessChecks.of(checker, store, 2)
    assert processes is not None and processes.workers == 2
    monkeypatch.setattr(ProcessChecks, "started", lambda *_: pytest.fail("workers started"))
    neighbours = Neighbours.of(store)
    is_copy = functools.partial(checker.is_copy, store)
    done = verified_copies(store, neighbours, is_copy, processes=processes)
    assert done.copies  # fewer than MIN_PAIRS pairs: checked here


def test_the_setting_picks_the_workers():
    assert check_processes.workers(3) == 3
    assert check_processes.workers(0) >= 1  # one per core


def test_one_worker_means_threads(copies):
    store, checker = copies
    assert ProcessChecks.of(checker, store, 1) is None
