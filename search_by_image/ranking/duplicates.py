"""Groups of near-duplicate images in a collection, found with the collection's own index.

Cost is paid once per collection generation: `Neighbours.of` searches each image's vector against
the index for its NEIGHBOURS nearest images (a batch of queries at a time), and every threshold is
then answered from that stored list: the links above it are joined into groups with a union-find.
A new threshold costs a pass over N x NEIGHBOURS links, not a scan of the collection (a range
search per request took seconds and gigabytes on a few thousand images: bench/README.md, "Figures
behind the code's choices"). Memory holds
the list (N x NEIGHBOURS ids and scores), never an N x N matrix. A group bigger than NEIGHBOURS
is still found whole as long as its members link up through one another.

The threshold is in the units of the index, the same as search scores; the default is the `copy`
threshold of match_kinds.py (0.85 raw, 0.6 whitened), where its measurements are. A group whose
every link reaches it is `copies`; one joined by weaker links (a lower threshold asked for) is
`similar`. Global descriptors cannot tell an edited copy from another shot of the same scene: on
holidays_subset300 at the default, 88% of 300 planted altered copies were grouped with their
original and 36% of the distinct photos with another shot of their scene (bench/README.md).
With local verification on (the service's default), groups link only the pairs that
verification.Verifier.is_copy confirms (which pairs are checked: pair_checks.py).
duplicate_pass.py carries both to the next store over live deletes and adds.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from search_by_image.index.live_store import LiveStore
from search_by_image.index.pass_search import nearest_search
from search_by_image.ranking.match_kinds import thresholds_for

QUERY_BATCH = 1024
#: Nearest images kept per image: links to more near-copies than this come through the others.
NEIGHBOURS = 32


@dataclass
class Group:
    #: (id, path) of each member, by path
    images: list[tuple[int, str]]
    #: the highest similarity between two members
    best: float
    #: the lowest similarity among the links that joined the group
    weakest: float
    #: copies: every link at copy strength (match_kinds); similar: some weaker link joined it
    kind: str = "copies"

    @property
    def fingerprint(self) -> str:
        """Names this group as it is now: its members (ids and paths) and kind. An action sent
        with a fingerprint that no current group has acts on nothing (the group changed)."""
        text = json.dumps([self.kind, self.images])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_threshold(store: LiveStore) -> float:
    return thresholds_for(store.whitening).copy


@dataclass(frozen=True)
class Neighbours:
    """Each image's nearest images in the collection, best first, as the index scores them."""

    #: the store generation they were computed on
    generation: str
    #: N ids; row r of `found` and `scores` belongs to ids[r]
    ids: np.ndarray
    #: N x NEIGHBOURS ids of the nearest other images (-1: none)
    found: np.ndarray
    #: N x NEIGHBOURS similarities, matching `found`
    scores: np.ndarray

    @classmethod
    def of(
        cls, store: LiveStore, count: int = NEIGHBOURS, progress: Callable[[int], None] | None = None
    ) -> Neighbours:
        """Each image searched for its `count` nearest, QUERY_BATCH at a time (`progress(done)`
        after each batch)."""
        ids = np.asarray(store.ids, np.int64)
        k = min(count + 1, len(ids))  # +1: an image finds itself
        found = np.full((len(ids), count), -1, np.int64)
        scores = np.full((len(ids), count), -np.inf, np.float32)
        search = nearest_search(store, ids, QUERY_BATCH)
        for start in range(0, len(ids), QUERY_BATCH):
            batch = ids[start : start + QUERY_BATCH]
            for row, (own, hits) in enumerate(zip(batch, search(start, batch, k))):
                kept = [hit for hit in hits if hit[0] != own][:count]
                found[start + row, : len(kept)] = [i for i, _ in kept]
                scores[start + row, : len(kept)] = [s for _, s in kept]
            if progress is not None:
                progress(start + len(batch))
        return cls(store.version, ids, found, scores)

    def links(self, threshold: float, nearest: int = 0) -> Iterator[tuple[int, int, float]]:
        """((id, id), similarity) of every stored pair above `threshold`, and of each image with
        its `nearest` first neighbours whatever their score; each pair once."""
        chosen = self.scores > threshold
        chosen[:, :nearest] |= self.found[:, :nearest] >= 0
        rows, columns = np.nonzero(chosen)
        seen: set[tuple[int, int]] = set()
        for row, column in zip(rows.tolist(), columns.tolist()):
            a, b = int(self.ids[row]), int(self.found[row, column])
            pair = (a, b) if a < b else (b, a)
            if pair not in seen:
                seen.add(pair)
                yield pair[0], pair[1], float(self.scores[row, column])


class Joined:
    """Which images links join, directly or through others (a union-find)."""

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()):
        self._parent: dict[int, int] = {}
        for a, b in pairs:
            self.join(a, b)

    def root(self, node: int) -> int:
        parent = self._parent
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def join(self, a: int, b: int) -> None:
        self._parent[self.root(a)] = self.root(b)

    def label(self, node: int) -> int:
        """The image that names `node`'s group (itself when no link joins it), adding nothing."""
        return self.root(node) if node in self._parent else node

    def joined(self, a: int, b: int) -> bool:
        known = a in self._parent and b in self._parent
        return a == b or (known and self.root(a) == self.root(b))

    def members(self) -> dict[int, list[int]]:
        """Each group's root -> its images."""
        groups: dict[int, list[int]] = {}
        for node in list(self._parent):
            groups.setdefault(self.root(node), []).append(node)
        return groups


@dataclass(frozen=True)
class Pairs:
    """Image pairs and their scores as arrays (a pass leaves hundreds of thousands implied: as
    Python tuples they cost seconds to carry over each write)."""

    #: n x 2 ids
    ends: np.ndarray
    #: n scores
    scores: np.ndarray

    @classmethod
    def of(cls, pairs: dict[tuple[int, int], float]) -> Pairs:
        ends = np.array(list(pairs), np.int64).reshape(-1, 2)
        return cls(ends, np.array(list(pairs.values()), np.float32))

    def __len__(self) -> int:
        return len(self.ends)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(map(tuple, self.ends.tolist()))

    def within(self, ids: np.ndarray) -> Pairs:
        """Those whose two images are among `ids`."""
        kept = np.isin(self.ends, ids).all(axis=1)
        return Pairs(self.ends[kept], self.scores[kept])

    def plus(self, other: Pairs) -> Pairs:
        return Pairs(np.concatenate([self.ends, other.ends]), np.concatenate([self.scores, other.scores]))


def find_groups(
    store: LiveStore,
    threshold: float | None = None,
    neighbours: Neighbours | None = None,
    copies: dict[tuple[int, int], float] | None = None,
    keep: Callable[[int, int], bool] | None = None,
    implied: Pairs | None = None,
    check: Callable[[int, int, float], bool] | None = None,
) -> list[Group]:
    """Groups of two or more linked images, largest first.

    Without `copies`: linked by similarities above the threshold (default: the `copy` score).
    With `copies` (verified pairs, pair_checks.verified_copies): linked by those, plus, when a
    threshold is given, by every similarity above it; a group is `copies` when all its links
    are verified. `implied`: pairs a pass left unchecked since verified copies joined them; one
    whose images the links kept here no longer join is checked now (`check(a, b, score)`) and
    links them if a copy. `neighbours` (of this store) saves recomputing them; the service keeps
    them per generation. `keep(a, b)`: False drops that link (pairs decided apart, images
    outside a filter).
    """
    if neighbours is None or neighbours.generation != store.version:
        neighbours = Neighbours.of(store)
    if copies is None:
        threshold = default_threshold(store) if threshold is None else threshold
        copy = thresholds_for(store.whitening).copy
        links = {(a, b): score for a, b, score in neighbours.links(threshold)}
        is_copy = {pair: score >= copy for pair, score in links.items()}
    else:
        links = dict(copies)
        if threshold is not None:
            links.update({(a, b): score for a, b, score in neighbours.links(threshold)})
        is_copy = {pair: pair in copies for pair in links}
    if keep is not None:
        links = {pair: score for pair, score in links.items() if keep(*pair)}
    # A union-find, not scipy's connected_components: scipy is in no install of this project and
    # would add 140 MB to the serving one (0.5 GB) for these lines.
    joined = Joined(links)
    if check is not None:
        for a, b, score in _unjoined(implied, joined):
            if (keep is None or keep(a, b)) and not joined.joined(a, b) and check(a, b, score):
                links[(a, b)], is_copy[(a, b)] = score, True
                joined.join(a, b)
    within: dict[int, list[tuple[int, int]]] = {}
    for pair in links:
        within.setdefault(joined.root(pair[0]), []).append(pair)
    groups = [
        Group(
            images=sorted(((i, store.path_of(i)) for i in ids), key=lambda m: m[1]),
            best=max(links[pair] for pair in within[key]),
            weakest=min(links[pair] for pair in within[key]),
            kind="copies" if all(is_copy[pair] for pair in within[key]) else "similar",
        )
        for key, ids in joined.members().items()
    ]
    return sorted(groups, key=lambda g: (-len(g.images), -g.best))


def _unjoined(implied: Pairs | None, joined: Joined) -> list[tuple[int, int, float]]:
    """The implied pairs whose images `joined` does not join, best scoring first (each image's
    group read once, the pairs compared as arrays)."""
    if implied is None or not len(implied):
        return []
    ends = np.unique(implied.ends)
    labels = np.array([joined.label(int(i)) for i in ends.tolist()], np.int64)[
        np.searchsorted(ends, implied.ends)
    ]
    apart = np.flatnonzero(labels[:, 0] != labels[:, 1])
    apart = apart[np.argsort(-implied.scores[apart], kind="stable")]
    return [(int(a), int(b), float(s)) for (a, b), s in zip(implied.ends[apart], implied.scores[apart])]


def write_report(groups: list[Group], out: TextIO, fmt: str) -> None:
    """CSV (one row per image: group, id, path, best and weakest similarity) or JSON."""
    if fmt == "json":
        json.dump(
            [
                {
                    "group": number,
                    "kind": g.kind,
                    "best": round(g.best, 4),
                    "weakest": round(g.weakest, 4),
                    "images": [{"id": i, "path": p} for i, p in g.images],
                }
                for number, g in enumerate(groups, start=1)
            ],
            out,
            indent=1,
        )
        out.write("\n")
        return
    writer = csv.writer(out)
    writer.writerow(["group", "kind", "id", "path", "best", "weakest"])
    for number, group in enumerate(groups, start=1):
        for image_id, path in group.images:
            writer.writerow([number, group.kind, image_id, path, f"{group.best:.4f}", f"{group.weakest:.4f}"])
