"""A collection's duplicate groups, kept between requests: the neighbour list and verified copies
computed once per store version (one caller computes, the others wait for it), and the groups of
the last few (threshold, scope) until the store changes. After live deletes only, the neighbours
are those of the last store less the deleted images: nothing is searched again."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable

from search_by_image.index.live_store import LiveStore
from search_by_image.ranking.duplicates import Group, Neighbours, find_groups, verified_copies
from search_by_image.ranking.verifier import Verifier

#: Duplicate groups kept per store version, by (threshold, scope) (each a pass over the neighbours).
KEPT_THRESHOLDS = 8


class DuplicateGroups:
    def __init__(self, verifier: Verifier | None):
        #: local verification of candidate pairs (None: groups from scores alone)
        self._verifier = verifier
        self._lock = threading.Lock()
        self._neighbours: Neighbours | None = None
        self._groups: dict[tuple[float | None, Hashable], list[Group]] = {}
        self._copies: dict[tuple[int, int], float] | None = None
        #: the store the neighbours were computed for
        self._neighbours_of: LiveStore | None = None

    def of(
        self,
        store: LiveStore,
        threshold: float | None,
        keep: Callable[[int, int], bool] | None = None,
        scope: Hashable = None,
    ) -> list[Group]:
        """`store`'s groups at `threshold`; `keep(a, b)` drops links (pairs decided apart, images
        outside a filter), and `scope` names what it keeps, for the cache."""
        with self._lock:
            if self._neighbours is None or self._neighbours.generation != store.version:
                self._group_store(store)
            key = (threshold, scope)
            if key not in self._groups:
                if len(self._groups) >= KEPT_THRESHOLDS:
                    self._groups.pop(next(iter(self._groups)))
                self._groups[key] = find_groups(store, threshold, self._neighbours, self._copies, keep)
            return self._groups[key]

    def _group_store(self, store: LiveStore) -> None:
        before, self._neighbours_of = self._neighbours_of, store
        self._groups = {}
        derived = self._neighbours.after_deletes(before, store) if self._neighbours and before else None
        if derived is not None:
            self._neighbours = derived
            if self._copies is not None:
                self._copies = {p: v for p, v in self._copies.items() if p[0] in store and p[1] in store}
            return
        self._neighbours = Neighbours.of(store)
        self._copies = (
            None
            if self._verifier is None
            else verified_copies(store, self._neighbours, functools.partial(self._verifier.is_copy, store))
        )
