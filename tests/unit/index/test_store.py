"""Saved indexes: save/load symmetric, and a crash at any step leaves a loadable, consistent set."""

import os

import numpy as np
import pytest
from stores import SPEC, as_saved_format, clustered_ivf_store, commit, random_store, unit_rows

from search_by_image.errors import IndexBusy, IndexCorrupt, IndexMissing
from search_by_image.index import disk
from search_by_image.index.disk import writer_lock
from search_by_image.index.store import IndexStore
from search_by_image.layout import PATHS_FILE, PREVIOUS_DIR


def test_save_then_load_gives_the_same_index(tmp_path):
    store = random_store(20, seed=1)
    commit(store, tmp_path)
    loaded = IndexStore.load(tmp_path)
    assert loaded.paths == store.paths
    assert np.array_equal(loaded.ids, store.ids)
    assert np.array_equal(np.asarray(loaded.features), store.features)
    assert loaded.manifest == store.manifest
    hits = loaded.search(store.features[[7]], k=3)[0]
    assert hits[0][0] == 7 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert not (tmp_path / PREVIOUS_DIR).exists()


def test_ids_stay_with_their_images_across_adds_and_deletes(tmp_path):
    store = random_store(6, seed=11)
    extra = unit_rows(2, seed=12)
    new = {"new/a.jpg": (1, 1), "new/b.jpg": (1, 1)}
    grown = store.with_changes([], extra, list(new), new, [6, 7])
    assert grown.ids.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    shrunk = grown.with_changes([2, 6], extra[:0], [], {}, [])
    assert shrunk.ids.tolist() == [0, 1, 3, 4, 5, 7] and shrunk.id_of("new/a.jpg") is None
    assert shrunk.manifest.generation not in (store.manifest.generation, grown.manifest.generation)
    assert len(store) == 6  # the old snapshot is untouched: readers keep what they hold
    commit(shrunk, tmp_path)
    loaded = IndexStore.load(tmp_path)
    assert loaded.search(extra[[1]], k=1)[0][0][0] == 7
    assert loaded.search(store.features[[3]], k=1)[0][0][0] == 3
    again = loaded.with_changes(
        [], extra[:1], ["new/c.jpg"], {"new/c.jpg": (1, 1)}, [loaded.manifest.next_id]
    )
    assert again.ids[-1] == 8  # ids are never reused


def test_filtered_search_returns_k_results_from_the_allowed_ids_only():
    store = random_store(200, seed=13)
    allowed = np.arange(0, 200, 10)  # 20 allowed images, none of them near the query
    query = store.features[[5]]
    hits = store.search(query, k=10, allowed=allowed)[0]
    assert len(hits) == 10 and {i for i, _ in hits} <= set(allowed.tolist())
    post_filtered = [i for i, _ in store.search(query, k=10)[0] if i in set(allowed.tolist())]
    assert len(post_filtered) < 10  # why the filter must happen inside the search
    assert store.search(query, k=10, allowed=np.array([], np.int64)) == [[]]


def test_a_large_collection_gets_a_tuned_ivf_index_that_still_filters_exactly(tmp_path):
    store, features = clustered_ivf_store(4000, seed=14, spread=0.3)
    assert store.manifest.index_type.startswith("IVF")
    assert store.manifest.nprobe >= 1 and store.manifest.recall_at_10 >= 0.95
    commit(store, tmp_path)
    loaded = IndexStore.load(tmp_path)
    allowed = np.arange(0, 4000, 97)
    hits = loaded.search(features[[1]], k=10, allowed=allowed)[0]
    assert len(hits) == 10 and {i for i, _ in hits} <= set(allowed.tolist())
    exact = allowed[np.argsort(-(features[allowed] @ features[1]))[:10]]
    assert [i for i, _ in hits] == exact.tolist()


def test_index_type_follows_collection_size():
    from search_by_image.index.choice import FLAT, choose_index_type

    assert choose_index_type(10_000, 256) == FLAT
    assert choose_index_type(10_000, 2048) == FLAT
    assert choose_index_type(1_000_000, 256) == "IVF4096,Flat"
    assert choose_index_type(100_000, 2048) == "IVF1024,Flat"


def test_a_format_1_index_loads_with_row_numbers_as_ids(tmp_path):
    store = random_store(5, seed=15)
    commit(store, tmp_path)
    as_saved_format(tmp_path, 1)
    loaded = IndexStore.load(tmp_path)
    assert loaded.ids.tolist() == [0, 1, 2, 3, 4] and loaded.manifest.next_id == 5


def test_a_second_writer_waits_then_gives_up_with_a_reason(tmp_path):
    with writer_lock(tmp_path), pytest.raises(IndexBusy, match="try again"), writer_lock(tmp_path, wait=0.2):
        pass


def test_search_asks_for_no_more_than_the_index_holds(tmp_path):
    store = random_store(3, seed=2)
    assert len(store.search(store.features[:1], k=100)[0]) == 3


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexMissing, match="with_faiss.py"):
        IndexStore.load(tmp_path)


def test_files_that_disagree_are_refused(tmp_path):
    commit(random_store(5, seed=3), tmp_path)
    with open(tmp_path / PATHS_FILE, "a") as handle:
        handle.write("extra.jpg\n")
    with pytest.raises(IndexCorrupt, match="rebuild"):
        IndexStore.load(tmp_path)


def test_crash_while_writing_leaves_the_old_index(tmp_path, monkeypatch):
    old = random_store(5, seed=4)
    commit(old, tmp_path)

    def disk_full(*args):
        raise OSError("No space left on device")

    monkeypatch.setattr(disk.np, "save", disk_full)
    with pytest.raises(OSError):
        commit(random_store(9, seed=5), tmp_path)
    assert IndexStore.load(tmp_path).paths == old.paths


@pytest.mark.parametrize("renames_before_crash", [1, 2, 3])
def test_crash_between_renames_loads_the_complete_old_set(tmp_path, monkeypatch, renames_before_crash):
    old = random_store(5, seed=6)
    commit(old, tmp_path)
    real_replace, done = os.replace, []

    def crashing_replace(src, dst):
        if len(done) == renames_before_crash:
            raise KeyboardInterrupt("simulated crash")
        done.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(disk.os, "replace", crashing_replace)
    with pytest.raises(KeyboardInterrupt):
        commit(random_store(9, seed=7), tmp_path)
    monkeypatch.setattr(disk.os, "replace", real_replace)

    assert IndexStore.load(tmp_path).paths == old.paths  # readers use .previous/
    newer = random_store(4, seed=8)
    commit(newer, tmp_path)  # the next writer rolls back, then commits
    assert IndexStore.load(tmp_path).paths == newer.paths
    assert not (tmp_path / PREVIOUS_DIR).exists()


def test_a_memory_mapped_compressed_index_still_takes_live_adds_and_deletes(tmp_path):
    from search_by_image.index.choice import choose_index_type

    factory = choose_index_type(4000, 64, flat_max_cost=1e5, memory_limit=100_000)
    assert factory.endswith(",SQ8")  # too big for the memory limit as float32: 8-bit codes
    spec = SPEC.model_copy(update={"dim": 64})
    features = unit_rows(4000, seed=16, dim=64)
    paths = [f"{i}.jpg" for i in range(4000)]
    commit(IndexStore.create(spec, features, paths, {p: (1, 1) for p in paths}, index_type=factory), tmp_path)
    loaded = IndexStore.load(tmp_path)
    assert loaded.search(features[[9]], k=1)[0][0][0] == 9
    grown = loaded.with_changes([], unit_rows(1, seed=17, dim=64), ["new.jpg"], {"new.jpg": (1, 1)}, [4000])
    smaller = grown.with_changes([9], unit_rows(0, seed=17, dim=64), [], {}, [])
    assert len(smaller) == 4000 and 9 not in smaller
    assert smaller.search(features[[9]], k=1)[0][0][0] != 9
