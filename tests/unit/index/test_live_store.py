"""Live writes: logged in SQLite, laid over the saved index as a delta, searched as one with it,
and folded into a new base; the same answers as a store rebuilt with the same changes."""

import numpy as np
import pytest
from stores import commit, log_adds, log_delete, random_store, unit_rows

from search_by_image.catalog.database import transaction
from search_by_image.index import live_log
from search_by_image.index.live_store import LiveStore, load_live
from search_by_image.index.selection import BITMAP_FROM
from search_by_image.index.store import IndexStore


@pytest.fixture
def saved(tmp_path):
    base = random_store(300, seed=21)
    commit(base, tmp_path)
    return tmp_path, base


def test_adds_and_deletes_are_searched_like_a_rebuilt_store(saved):
    folder, base = saved
    conn = live_log.open_log(folder)
    extra = unit_rows(5, seed=22)
    names = [f"uploads/{i}.jpg" for i in range(5)]
    new_ids = log_adds(conn, base, extra, names)
    assert new_ids == [300, 301, 302, 303, 304]
    log_delete(conn, 7, base.path_of(7))
    log_delete(conn, 301, names[1])
    live, changes = load_live(folder, conn)
    assert len(changes) == 7 and live.seq == live_log.max_seq(conn) == 7
    assert len(live) == 300 + 5 - 2
    assert 7 not in live and 301 not in live and 300 in live and live.path_of(302) == names[2]
    assert live.id_of(names[0]) == 300 and live.id_of(names[1]) is None
    kept = [names[i] for i in (0, 2, 3, 4)]
    files = dict.fromkeys(kept, (1, 1))
    rebuilt = base.with_changes([7], extra[[0, 2, 3, 4]], kept, files, [300, 302, 303, 304])
    queries = np.concatenate([extra, base.features[[7, 8, 9]]])
    for k in (1, 10, 400):
        assert [[i for i, _ in hits] for hits in live.search(queries, k)] == [
            [i for i, _ in hits] for hits in rebuilt.search(queries, k)
        ]
    assert sorted(live.ids.tolist()) == sorted(rebuilt.ids.tolist())
    assert np.allclose(live.vectors([302, 8]), np.stack([extra[2], base.features[8]]))


def test_a_filter_keeps_k_results_among_live_images_only(saved):
    folder, base = saved
    conn = live_log.open_log(folder)
    extra = unit_rows(3, seed=23)
    log_adds(conn, base, extra, ["uploads/a.jpg", "uploads/b.jpg", "uploads/c.jpg"])
    for image_id in range(0, 20, 2):
        log_delete(conn, image_id, base.path_of(image_id))
    live, _ = load_live(folder, conn)
    allowed = np.array([*range(0, 40), 300, 302], np.int64)  # 10 of the 40 deleted
    hits = live.search(extra[[0]], k=32, allowed=allowed)[0]
    found = {i for i, _ in hits}
    assert len(hits) == 32 and found <= set(allowed.tolist()) - set(range(0, 20, 2))
    assert 300 in found and 302 in found
    many = np.arange(0, 303, dtype=np.int64).repeat(BITMAP_FROM // 300 + 1)  # the bitmap selector
    assert {i for i, _ in live.search(extra[[1]], k=400, allowed=many)[0]} == set(live.ids.tolist())


def test_an_older_store_keeps_its_view_when_a_newer_one_is_written(saved):
    folder, base = saved
    conn = live_log.open_log(folder)
    first = LiveStore(IndexStore.load(folder))
    log_adds(conn, base, unit_rows(1, seed=24), ["uploads/a.jpg"])
    one = first.applied(live_log.rows_after(conn, first.seq))
    log_delete(conn, 300, "uploads/a.jpg")
    log_adds(conn, base, unit_rows(100, seed=25), [f"uploads/{i}.png" for i in range(100)])
    two = one.applied(live_log.rows_after(conn, one.seq))
    assert 300 in one and len(one) == 301 and 300 not in two and len(two) == 400
    log_adds(conn, base, unit_rows(1, seed=26), ["uploads/z.jpg"])
    branch = one.applied(live_log.rows_after(conn, one.seq))  # from the older store: a private copy
    assert len(branch) == len(two) + 1 and len(two) == 400 and 300 in one
    assert len(first) == 300 and first.search(base.features[[3]], 1)[0][0][0] == 3


def test_a_fold_writes_a_base_that_later_loads_skip(saved):
    folder, base = saved
    conn = live_log.open_log(folder)
    log_adds(conn, base, unit_rows(2, seed=27), ["uploads/a.jpg", "uploads/b.jpg"])
    log_delete(conn, 5, base.path_of(5))
    live, _ = load_live(folder, conn)
    folded = live.folded()
    assert folded.manifest.folded_seq == 3 and len(folded) == 301 and folded.manifest.next_id == 302
    commit(folded, folder)
    again, changes = load_live(folder, conn)  # rows not yet removed: at or below folded_seq
    assert changes == [] and len(again) == 301 and again.delta_size == 0
    with transaction(conn):
        live_log.remove_folded(conn, again.manifest.folded_seq)
    assert live_log.rows_after(conn, 0) == [] and live_log.max_seq(conn) == 3  # seq never reused
    assert log_adds(conn, again.base, unit_rows(1, seed=28), ["uploads/c.jpg"]) == [302]


def test_an_id_deleted_then_added_again_is_live_once(saved):
    """A restored image keeps its id: the base's row stays hidden, the delta's is served."""
    folder, base = saved
    conn = live_log.open_log(folder)
    path, vector = base.path_of(9), base.features[[9]]
    log_delete(conn, 9, path)
    with transaction(conn):
        live_log.append_adds(conn, 9, [path], vector, [(1, 1)])
    live, _ = load_live(folder, conn)
    assert 9 in live and live.id_of(path) == 9 and len(live) == 300
    assert [i for i, _ in live.search(vector, 2)[0]].count(9) == 1
    assert sorted(live.ids.tolist()) == list(range(300))
    log_delete(conn, 9, path)
    gone, _ = load_live(folder, conn)
    assert 9 not in gone and len(gone) == 299 and 9 not in {i for i, _ in gone.search(vector, 5)[0]}
    folded = live.folded()  # the restored row replaces the base's
    assert len(folded) == 300 and folded.path_of(9) == path


def test_a_path_deleted_then_added_again_folds_under_its_new_id(saved):
    """A trashed image restored (duplicate review's undo) is a delete and an add of one path."""
    folder, base = saved
    conn = live_log.open_log(folder)
    path = base.path_of(5)
    log_delete(conn, 5, path)
    (again,) = log_adds(conn, base, base.features[[5]], [path])
    live, _ = load_live(folder, conn)
    folded = live.folded()
    assert folded.id_of(path) == again and 5 not in folded and len(folded) == len(base)
