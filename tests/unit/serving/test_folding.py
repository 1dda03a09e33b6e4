"""Folds: live writes written into a new base in the background, the log then emptied; a fold
that finds the base rewritten meanwhile changes nothing."""

from stores import commit, log_adds, log_delete, random_store, unit_rows

from search_by_image.index import live_log
from search_by_image.index.disk import committed_generation
from search_by_image.index.live_store import load_live
from search_by_image.serving import folding


def test_a_fold_writes_a_new_base_and_empties_the_log(tmp_path):
    base = random_store(50, seed=31)
    commit(base, tmp_path)
    conn = live_log.open_log(tmp_path)
    added = log_adds(conn, base, unit_rows(3, seed=32), ["uploads/a.jpg", "uploads/b.jpg", "uploads/c.jpg"])
    log_delete(conn, 4, base.path_of(4))
    live, _ = load_live(tmp_path, conn)
    assert folding.due(live, fold_rows=4, fold_fraction=0.05) and not folding.due(live, 5, 0.05)
    assert folding.fold(tmp_path, live)
    again, changes = load_live(tmp_path, conn)
    assert changes == [] and live_log.rows_after(conn, 0) == [] and again.delta_size == 0
    assert len(again.base) == 52 and sorted(again.ids.tolist()) == sorted(live.ids.tolist())
    assert again.search(unit_rows(3, seed=32)[[1]], 1)[0][0][0] == added[1]
    assert not list(tmp_path.glob(".fold.*.tmp"))


def test_a_fold_over_a_base_rewritten_meanwhile_changes_nothing(tmp_path):
    base = random_store(50, seed=33)
    commit(base, tmp_path)
    conn = live_log.open_log(tmp_path)
    log_adds(conn, base, unit_rows(1, seed=34), ["uploads/a.jpg"])
    live, _ = load_live(tmp_path, conn)
    rewritten = random_store(50, seed=35, next_id=51)  # an indexer run's new base
    commit(rewritten, tmp_path)
    assert not folding.fold(tmp_path, live)
    assert committed_generation(tmp_path) == rewritten.manifest.generation
    assert len(live_log.rows_after(conn, 0)) == 1 and not list(tmp_path.glob(".fold.*.tmp"))
