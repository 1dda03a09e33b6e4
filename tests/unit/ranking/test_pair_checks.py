"""The pairs a duplicates pass checks: those verified copies already join are left implied, and
checked later only where a grouping leaves out the links that joined them."""

import functools
import itertools

import numpy as np
import pytest
from helpers import copy_photos, make_settings, write_cat_copies

from search_by_image.catalog import locations
from search_by_image.index.live_store import LiveStore
from search_by_image.index.store import IndexStore
from search_by_image.indexing.indexer import update_index
from search_by_image.ranking import pair_checks, verifier
from search_by_image.ranking.duplicate_pass import DuplicatePass
from search_by_image.ranking.duplicates import Neighbours, Pairs, find_groups
from search_by_image.ranking.pair_checks import reuse_order, verified_copies


class Ids:
    """What the pair checks and find_groups read of a store: ids, paths, its generation."""

    whitening = None
    version = "g"

    def __init__(self, ids: list[int]):
        self.ids = ids

    def __contains__(self, image_id: int) -> bool:
        return image_id in self.ids

    def path_of(self, image_id: int) -> str:
        return f"{image_id}.jpg"


def everyone_linked(ids: list[int]) -> Neighbours:
    """Each image's nearest: all the others, at copy strength."""
    found = np.array([[j for j in ids if j != i] for i in ids], np.int64)
    return Neighbours("g", np.array(ids, np.int64), found, np.full(found.shape, 0.95, np.float32))


def test_a_pass_leaves_the_pairs_its_copies_already_join_unchecked():
    """Six copies of one photo and a distinct one: 21 pairs, of which the copies' 15 need only 5
    verified to group them; the others are implied, never checked, and the groups are the same."""
    ids = [1, 2, 3, 4, 5, 6, 7]
    checked = []

    def is_copy(a: int, b: int, mirror: bool) -> bool:
        checked.append((a, b))
        return a != 7 and b != 7

    found = verified_copies(Ids(ids), everyone_linked(ids), is_copy, threads=1)
    assert len(checked) < 21
    assert set(found.copies) | set(found.implied) == set(itertools.combinations(ids[:6], 2))
    assert all((i, 7) in checked for i in ids[:6])  # nothing joins the distinct one
    groups = find_groups(Ids(ids), None, everyone_linked(ids), found.copies, None, found.implied)
    assert [sorted(i for i, _ in g.images) for g in groups] == [[1, 2, 3, 4, 5, 6]]


def test_an_implied_pair_is_checked_when_the_links_that_joined_it_are_left_out():
    """1-2 and 2-3 verified, 1-3 implied: with image 2 outside a filter (or deleted), 1 and 3
    are grouped only if checking 1-3 finds a copy; the check is made then, once per pass."""
    ids = [1, 2, 3]
    store, neighbours = Ids(ids), everyone_linked(ids)
    copies, implied = {(1, 2): 0.95, (2, 3): 0.95}, Pairs.of({(1, 3): 0.95})
    checked = []

    def check(a: int, b: int, score: float) -> bool:
        checked.append((a, b))
        return True

    def without_2(a: int, b: int) -> bool:
        return 2 not in (a, b)

    whole = find_groups(store, None, neighbours, copies, None, implied, check)
    assert [len(g.images) for g in whole] == [3] and not checked
    kept = find_groups(store, None, neighbours, copies, without_2, implied, check)
    assert [sorted(i for i, _ in g.images) for g in kept] == [[1, 3]] and checked == [(1, 3)]
    assert not find_groups(store, None, neighbours, copies, without_2, implied, lambda *_: False)
    assert not find_groups(store, None, neighbours, copies, without_2, implied)  # no checker


@pytest.fixture(scope="module")
def three_cats(tmp_path_factory):
    """The demo photos plus two copies of the cat: three images that are all copies of one
    another, so a pass verifies two of their pairs and leaves the third implied."""
    root = tmp_path_factory.mktemp("three-cats")
    settings = make_settings(root)
    copy_photos(settings.images_dir)
    write_cat_copies(settings.images_dir)
    update_index(settings, progress=False)
    return settings


def test_two_copies_stay_grouped_whichever_third_copy_is_left_out(three_cats, monkeypatch):
    store = LiveStore(IndexStore.load(three_cats.saved_dir))
    checker = verifier.Verifier(locations.find(three_cats, locations.DEFAULT), 10**8, 10)
    is_copy = functools.partial(checker.is_copy, store)
    monkeypatch.setattr(pair_checks, "AHEAD", 1)  # one check at a time: each sees the last's answer
    neighbours = Neighbours.of(store)
    done = DuplicatePass(store, neighbours, verified_copies(store, neighbours, is_copy, threads=1))
    assert done.copies is not None
    cats = {store.id_of(p) for p in ("chelsea.jpg", "cat-small.jpg", "cat-crop.jpg")}
    assert len(done.copies.copies) == 2
    assert set(done.copies.implied) == set(itertools.combinations(sorted(cats), 2)) - set(done.copies.copies)
    assert [{i for i, _ in g.images} for g in done.groups(None, None, is_copy)] == [cats]
    for left_out in cats:
        groups = done.groups(None, lambda a, b, out=left_out: out not in (a, b), is_copy)
        assert [{i for i, _ in g.images} for g in groups] == [cats - {left_out}]
        assert all(g.kind == "copies" for g in groups)
    assert len(done.later) == 1  # the implied pair, checked once for the three groupings


def test_reuse_order_keeps_every_link_and_puts_an_images_links_together():
    links = [(1, 9, 0.9), (2, 8, 0.8), (1, 2, 0.7), (3, 9, 0.6), (4, 5, 0.5)]
    ordered = reuse_order(links)
    assert sorted(ordered) == sorted(links)
    at = {link: n for n, link in enumerate(ordered)}
    assert abs(at[(1, 9, 0.9)] - at[(3, 9, 0.6)]) <= 2


def test_a_pass_tries_a_pairs_mirror_only_where_it_scores_towards_a_copy():
    """Raw scores (copy 0.85, similar 0.75): the mirror is tried at 0.9, not at 0.76 (checked as
    similar) nor at 0.5 (checked as a nearest): a mirror costs a second set of keypoints."""
    ids = [1, 2, 3]
    found = np.array([[2, 3], [1, 3], [1, 2]], np.int64)
    scores = np.array([[0.9, 0.76], [0.9, 0.5], [0.76, 0.5]], np.float32)
    tried = {}

    def is_copy(a: int, b: int, mirror: bool) -> bool:
        tried[(a, b)] = mirror
        return False

    verified_copies(Ids(ids), Neighbours("g", np.array(ids, np.int64), found, scores), is_copy, threads=1)
    assert pair_checks.mirror_score(Ids(ids)) == pytest.approx(0.78)
    assert tried == {(1, 2): True, (1, 3): False, (2, 3): False}
