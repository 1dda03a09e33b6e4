"""collapse=copies: one result per set of copies, the best-ranked kept in its place."""

from search_by_image.ranking.collapse import MAX_FETCHED, CopySets, collapse, fetched


def test_copies_in_one_collection_group_fold_into_the_best_ranked():
    ids = [10, 11, 20, 12, 30]
    kept, counts = collapse(ids, [False] * 5, CopySets({10: 1, 11: 1, 12: 1, 20: 2}))
    assert [ids[p] for p in kept] == [10, 20, 30] and counts == [2, 0, 0]


def test_copies_of_the_query_fold_together_and_join_their_groups():
    ids = [5, 6, 7, 8]
    kept, counts = collapse(ids, [True, False, True, False], CopySets({6: 3, 7: 3}))
    assert [ids[p] for p in kept] == [5, 8] and counts == [2, 0]  # 5 ~ query ~ 7 ~ 6


def test_nothing_to_fold_keeps_every_result():
    assert collapse([1, 2, 3], [False] * 3, CopySets()) == ([0, 1, 2], [0, 0, 0])


def test_copies_of_the_query_decided_apart_stay_apart():
    ids = [5, 6, 7]
    kept, counts = collapse(ids, [True, True, True], CopySets(apart=frozenset({(5, 6)})))
    assert [ids[p] for p in kept] == [5, 6] and counts == [1, 0]  # 7 folds into 5; 6 stays apart


def test_enough_results_are_fetched_to_fill_a_page():
    assert fetched(10) == 40 and fetched(1000) == 1000 and fetched(200) == MAX_FETCHED
