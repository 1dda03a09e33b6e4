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
verification.Verifier.is_copy confirms, checked among the pairs scoring at least `similar` and
each image's CHECKED_NEAREST nearest (`verified_copies`).
duplicate_pass.py carries both to the next store over live deletes and adds.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from search_by_image.devices import cpu_threads
from search_by_image.index.live_store import LiveStore
from search_by_image.ranking.match_kinds import RAW, WHITENED, thresholds_for

RAW_THRESHOLD = RAW.copy
WHITENED_THRESHOLD = WHITENED.copy
QUERY_BATCH = 1024
#: Nearest images kept per image: links to more near-copies than this come through the others.
NEIGHBOURS = 32
#: Each image's nearest this many are checked for copies whatever their score: a crop with a
#: border or a rotated, recompressed copy can score under `similar` and still be first or second.
CHECKED_NEAREST = 3
#: Checked pairs whose images' stored keypoints are read together (`verified_copies`).
PREFETCH_LINKS = 4096


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
    return WHITENED_THRESHOLD if store.whitening is not None else RAW_THRESHOLD


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
    def of(cls, store: LiveStore, count: int = NEIGHBOURS) -> Neighbours:
        ids = np.asarray(store.ids, np.int64)
        k = min(count + 1, len(ids))  # +1: an image finds itself
        found = np.full((len(ids), count), -1, np.int64)
        scores = np.full((len(ids), count), -np.inf, np.float32)
        for start in range(0, len(ids), QUERY_BATCH):
            batch = ids[start : start + QUERY_BATCH]
            for row, (own, hits) in enumerate(zip(batch, store.search(store.vectors(batch), k))):
                kept = [hit for hit in hits if hit[0] != own][:count]
                found[start + row, : len(kept)] = [i for i, _ in kept]
                scores[start + row, : len(kept)] = [s for _, s in kept]
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


def verified_copies(
    store: LiveStore,
    neighbours: Neighbours,
    is_copy: Callable[[int, int, bool], bool],
    threads: int | None = None,
    only: np.ndarray | None = None,
    prefetch: Callable[[list[int]], object] | None = None,
) -> dict[tuple[int, int], float]:
    """The stored pairs that `is_copy(a, b, try_mirror)` confirms (local verification:
    verification.Verifier.is_copy), with their scores. Checked: the pairs scoring at least
    `similar` (match_kinds; 99% of the altered copies do) and each image's CHECKED_NEAREST;
    mirror images only for pairs scoring at least `similar` (mirrored copies often score under
    `copy`; checking a mirror costs a second set of keypoints). The pairs are checked on
    `threads` threads of their own (OpenCV and FAISS release the GIL), not on the searches'
    verification pool, whose queue they would hold up for the whole pass. `only`: just the
    pairs with one of these ids (the images a live add brought). `prefetch(ids)`: called with
    the images of each PREFETCH_LINKS checked pairs before they are checked (stored keypoints
    read a few hundred at a time: verifier.Verifier.preload)."""
    similar = thresholds_for(store.whitening is not None).similar
    checked = list(neighbours.links(similar, CHECKED_NEAREST))
    if only is not None:
        new = set(only.tolist())
        checked = [link for link in checked if link[0] in new or link[1] in new]
    checked = reuse_order(checked)
    pool = ThreadPoolExecutor(threads or cpu_threads(), thread_name_prefix="duplicates")
    found: list[bool] = []
    try:
        for start in range(0, len(checked), PREFETCH_LINKS):
            chunk = checked[start : start + PREFETCH_LINKS]
            if prefetch is not None:
                prefetch(list(dict.fromkeys(i for a, b, _ in chunk for i in (a, b))))
            found += pool.map(lambda link: is_copy(link[0], link[1], link[2] >= similar), chunk)
    finally:  # a failing check ends the pass without the pairs still queued
        pool.shutdown(cancel_futures=True)
    return {(a, b): score for (a, b, score), copy in zip(checked, found, strict=True) if copy}


def reuse_order(links: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """`links` ordered so that those sharing an image come close together: the images numbered
    depth first over the links' graph, the links by their later image. A check reads both
    images' keypoints from the verifier's bounded cache; in the neighbour lists' order a link's
    second image is anywhere in the collection, extracted again once the cache has moved on."""
    adjacent: dict[int, list[int]] = {}
    for a, b, _ in links:
        adjacent.setdefault(a, []).append(b)
        adjacent.setdefault(b, []).append(a)
    position: dict[int, int] = {}
    for start in adjacent:
        stack = [start]
        while stack:
            node = stack.pop()
            if node not in position:
                position[node] = len(position)
                stack.extend(other for other in adjacent[node] if other not in position)
    return sorted(links, key=lambda link: sorted((position[link[0]], position[link[1]]), reverse=True))


def find_groups(
    store: LiveStore,
    threshold: float | None = None,
    neighbours: Neighbours | None = None,
    copies: dict[tuple[int, int], float] | None = None,
    keep: Callable[[int, int], bool] | None = None,
) -> list[Group]:
    """Groups of two or more linked images, largest first.

    Without `copies`: linked by similarities above the threshold (default: the `copy` score).
    With `copies` (verified pairs, `verified_copies`): linked by those, plus, when a threshold
    is given, by every similarity above it; a group is `copies` when all its links are verified.
    `neighbours` (of this store) saves recomputing them; the service keeps them per generation.
    `keep(a, b)`: False drops that link (pairs decided apart, images outside a filter).
    """
    if neighbours is None or neighbours.generation != store.version:
        neighbours = Neighbours.of(store)
    if copies is None:
        threshold = default_threshold(store) if threshold is None else threshold
        copy = thresholds_for(store.whitening is not None).copy
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
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in links:
        parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for node in parent:
        members.setdefault(root(node), []).append(node)
    joined: dict[int, list[tuple[int, int]]] = {}
    for pair in links:
        joined.setdefault(root(pair[0]), []).append(pair)
    groups = [
        Group(
            images=sorted(((i, store.path_of(i)) for i in ids), key=lambda m: m[1]),
            best=max(links[pair] for pair in joined[key]),
            weakest=min(links[pair] for pair in joined[key]),
            kind="copies" if all(is_copy[pair] for pair in joined[key]) else "similar",
        )
        for key, ids in members.items()
    ]
    return sorted(groups, key=lambda g: (-len(g.images), -g.best))


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
