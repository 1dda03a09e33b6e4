"""One result per photo: results that are verified copies of one another folded into the
best-ranked of them (`collapse=copies`).

Two results are copies when the collection's duplicate groups put them in one `copies` group
(duplicates.py: pairs confirmed by local verification, computed once per index generation), or
when both were verified as copies of the query itself (a query with six edited copies indexed
fills no more than one place). Ranks are otherwise kept: the first of each set stays where it
was, the others leave the list, and the list is filled up from further down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: Results fetched per result shown when collapsing: room for each photo's copies to fold.
DEPTH = 4
#: At most this many results fetched for one collapsed page.
MAX_FETCHED = 400

QUERY = -1  # the node standing for the query in the union of copies


@dataclass(frozen=True)
class CopySets:
    """What collapsing knows of the collection: each image's copies group, and the pairs a user
    decided are not duplicates (never folded together as copies of the query either)."""

    group_of: Mapping[int, int] = field(default_factory=dict)
    #: (smaller id, larger id)
    apart: frozenset[tuple[int, int]] = frozenset()


def fetched(wanted: int) -> int:
    """How many results to fetch to fill `wanted` collapsed ones (most of the time)."""
    return min(max(wanted * DEPTH, wanted), max(MAX_FETCHED, wanted))


def collapse(
    ids: Sequence[int], copy_of_query: Sequence[bool], known: CopySets
) -> tuple[list[int], list[int]]:
    """The positions in `ids` (best first) that stay, and how many results each stands for
    besides itself. `copy_of_query[i]`: result i was verified a copy of the query (folded with
    the other copies of the query, unless decided apart from one of them); `known.group_of`: an
    image's copies group in the collection (absent: in none)."""
    parent: dict[object, object] = {}
    of_query: list[int] = []

    def root(node: object) -> object:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for image, copy in zip(ids, copy_of_query, strict=True):
        if copy and not any((min(image, o), max(image, o)) in known.apart for o in of_query):
            of_query.append(image)
            parent[root(("image", image))] = root(("query", QUERY))
        group = known.group_of.get(image)
        if group is not None:
            parent[root(("image", image))] = root(("group", group))
    kept: list[int] = []
    first: dict[object, int] = {}
    counts: list[int] = []
    for position, image in enumerate(ids):
        key = root(("image", image))
        if key in first:
            counts[first[key]] += 1
            continue
        first[key] = len(kept)
        kept.append(position)
        counts.append(0)
    return kept, counts
