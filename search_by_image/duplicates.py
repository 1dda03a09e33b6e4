"""Groups of near-duplicate images in a collection, found with the collection's own index.

Each image's vector is range-searched against the index (everything above the threshold comes
back, not a fixed top k), a batch of queries at a time, and the pairs are joined into groups with
a union-find. Memory holds one batch of results and the pairs, never an N x N matrix: at 100k
images a Flat scan is ~2.6e12 multiply-adds, some tens of seconds on 2 cores.

The threshold is in the units of the index, the same as search scores. Defaults, measured with
EfficientNet-Lite0 (448 px, GeM) on holidays_subset300 and the demo photos:
- raw descriptors: 99.9% of pairs of different scenes score under 0.76; half-size copies and
  8%-cropped copies score 0.85 and up -> 0.85.
- with the default 384-d whitening (collections of 400+ images): different scenes under 0.14 at
  the 99.9th percentile; half-size and cropped copies 0.58 and up -> 0.5.
Heavy re-compression (JPEG quality 15 of a small photo) can fall under either; lower the
threshold to catch those, at the price of near-identical scenes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from search_by_image.index_choice import search_params
from search_by_image.index_store import IndexStore

RAW_THRESHOLD = 0.85
WHITENED_THRESHOLD = 0.5
QUERY_BATCH = 1024


@dataclass
class Group:
    #: (id, path) of each member, by path
    images: list[tuple[int, str]]
    #: the highest similarity between two members
    best: float
    #: the lowest similarity among the links that joined the group
    weakest: float


def default_threshold(store: IndexStore) -> float:
    return WHITENED_THRESHOLD if store.whitening is not None else RAW_THRESHOLD


def similar_pairs(store: IndexStore, threshold: float) -> Iterator[tuple[int, int, float]]:
    """(id, id, similarity) of every pair above `threshold`, each pair once."""
    params = search_params(store.index, store.manifest.nprobe)
    features = np.asarray(store.features)
    for start in range(0, len(store), QUERY_BATCH):
        queries = store._searched(features[start:start + QUERY_BATCH])
        limits, scores, found = store.index.range_search(queries, threshold, params=params)
        for row in range(len(queries)):
            own = int(store.ids[start + row])
            for other, score in zip(found[limits[row]:limits[row + 1]], scores[limits[row]:limits[row + 1]]):
                if own < other:
                    yield own, int(other), float(score)


def find_groups(store: IndexStore, threshold: float | None = None) -> list[Group]:
    """Groups of two or more images linked by similarities above the threshold, largest first."""
    threshold = default_threshold(store) if threshold is None else threshold
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    links: list[tuple[int, int, float]] = []
    for a, b, score in similar_pairs(store, threshold):
        parent[root(a)] = root(b)
        links.append((a, b, score))
    members: dict[int, list[int]] = {}
    for node in parent:
        members.setdefault(root(node), []).append(node)
    scores: dict[int, list[float]] = {}
    for a, _, score in links:
        scores.setdefault(root(a), []).append(score)
    groups = [
        Group(images=sorted(((i, store.paths[store.row_of_id[i]]) for i in ids), key=lambda m: m[1]),
              best=max(scores[key]), weakest=min(scores[key]))
        for key, ids in members.items()
    ]
    return sorted(groups, key=lambda g: (-len(g.images), -g.best))


def write_report(groups: list[Group], out: TextIO, fmt: str) -> None:
    """CSV (one row per image: group, id, path, best and weakest similarity) or JSON."""
    if fmt == "json":
        json.dump([{"group": number, "best": round(g.best, 4), "weakest": round(g.weakest, 4),
                    "images": [{"id": i, "path": p} for i, p in g.images]}
                   for number, g in enumerate(groups, start=1)], out, indent=1)
        out.write("\n")
        return
    writer = csv.writer(out)
    writer.writerow(["group", "id", "path", "best", "weakest"])
    for number, group in enumerate(groups, start=1):
        for image_id, path in group.images:
            writer.writerow([number, image_id, path, f"{group.best:.4f}", f"{group.weakest:.4f}"])
