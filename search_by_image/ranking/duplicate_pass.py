"""A collection's duplicates pass kept up to date write by write: the neighbour list and the
verified copies of one store, carried to the next store by what changed, not computed again.

After live deletes the rows and links of the deleted images are dropped (`Neighbours.after_deletes`).
After live adds only the added images are searched: each gets its NEIGHBOURS nearest, and each
existing image the added one scores into the top list of gets it there too (the reverse link;
found among the added image's REVERSE_DEPTH nearest, since scores are symmetric). Only the new
pairs are verified; the verified pairs of the images kept stay. Anything else (a new base with
other vectors, another whitening or embedder) is a full pass again. The pairs a pass left
implied (pair_checks.py) are checked when a grouping needs them, once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from search_by_image.index.live_store import LiveStore
from search_by_image.ranking.check_processes import ProcessChecks
from search_by_image.ranking.duplicates import NEIGHBOURS, Group, Neighbours, find_groups
from search_by_image.ranking.pair_checks import IsCopy, Verified, mirror_score, verified_copies

#: Nearest images an added image is searched for, to find the existing images whose top list it
#: enters: one that ranks the added image in its NEIGHBOURS and lies past this depth in the added
#: image's own ranking is missed (rare: a hub image scored close by many).
REVERSE_DEPTH = 8 * NEIGHBOURS

#: reads the stored keypoints of these ids before their pairs are checked (`Verifier.preload`)
Prefetch = Callable[[list[int]], object]


@dataclass
class Progress:
    """How far a pass has got, updated as it goes: "neighbours" (images searched) then "pairs"
    (pairs checked), `done` of `total`."""

    phase: str = "neighbours"
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class DuplicatePass:
    """The neighbours of `store` and its verified copies (None: verification off)."""

    store: LiveStore
    neighbours: Neighbours
    copies: Verified | None
    #: implied pairs checked since (`groups`): pair -> a copy; filled under the caller's lock
    later: dict[tuple[int, int], bool] = field(default_factory=dict, compare=False)

    @classmethod
    def of(
        cls,
        store: LiveStore,
        is_copy: IsCopy | None,
        prefetch: Prefetch | None = None,
        progress: Progress | None = None,
        processes: ProcessChecks | None = None,
    ) -> DuplicatePass:
        """The whole pass: every image searched, the pairs that can be copies checked (in
        `processes` where given: pair_checks.verified_copies); `progress` updated as it goes."""
        progress = progress or Progress()
        neighbours = Neighbours.of(
            store, progress=lambda done: _report(progress, "neighbours", done, len(store))
        )
        copies = None
        if is_copy is not None:
            checked = functools.partial(_report, progress, "pairs")
            copies = verified_copies(
                store, neighbours, is_copy, prefetch=prefetch, progress=checked, processes=processes
            )
        return cls(store, neighbours, copies)

    def updated(
        self,
        store: LiveStore,
        is_copy: IsCopy | None,
        prefetch: Prefetch | None = None,
        progress: Progress | None = None,
        processes: ProcessChecks | None = None,
    ) -> DuplicatePass:
        """This pass carried to `store`: derived when `store` is this one's less deletes and
        plus adds (`after_writes`), else computed whole."""
        if (self.copies is None) != (is_copy is None):
            return DuplicatePass.of(store, is_copy, prefetch, progress, processes)
        derived = after_writes(self.neighbours, self.store, store)
        if derived is None:
            return DuplicatePass.of(store, is_copy, prefetch, progress, processes)
        neighbours, added = derived
        copies = None
        if self.copies is not None and is_copy is not None:
            kept = self.copies.within(store)
            new = verified_copies(store, touching(neighbours, added), is_copy, only=added, known=kept)
            copies = kept.plus(new)
        later = {p: c for p, c in self.later.items() if p[0] in store and p[1] in store}
        return DuplicatePass(store, neighbours, copies, later)

    def groups(
        self,
        threshold: float | None,
        keep: Callable[[int, int], bool] | None = None,
        is_copy: IsCopy | None = None,
    ) -> list[Group]:
        """find_groups over this pass; the implied pairs its links no longer join (`keep` drops
        some) checked with `is_copy`, each once (`later`)."""
        if self.copies is None:
            return find_groups(self.store, threshold, self.neighbours, None, keep)
        mirrored = mirror_score(self.store)

        def check(a: int, b: int, score: float) -> bool:
            if (a, b) not in self.later and is_copy is not None:
                self.later[(a, b)] = is_copy(a, b, score >= mirrored)
            return self.later.get((a, b), False)

        copies, implied = self.copies.copies, self.copies.implied
        return find_groups(self.store, threshold, self.neighbours, copies, keep, implied, check)


def _report(progress: Progress, phase: str, done: int, total: int) -> None:
    progress.phase, progress.done, progress.total = phase, done, total


def after_writes(
    neighbours: Neighbours, before: LiveStore, after: LiveStore
) -> tuple[Neighbours, np.ndarray] | None:
    """`neighbours` (of `before`) for `after` and the ids `after` added, when `after` is `before`
    less some images and plus others with the same vectors (same base or same ids' paths and
    files, same whitening and embedder); None otherwise."""
    if (
        before.version != neighbours.generation
        or after.whitening is not before.whitening
        or after.manifest.embedder != before.manifest.embedder
    ):
        return None
    new = ~np.isin(after.ids, before.ids)
    if after.base is not before.base and not all(
        before.path_of(int(i)) == path and before.fingerprint(path) == after.fingerprint(path)
        for i, path, fresh in zip(after.ids, after.paths, new)
        if not fresh
    ):
        return None
    kept = _less_deleted(neighbours, after.ids)
    added = np.asarray(after.ids[new], np.int64)
    if not len(added):
        return Neighbours(after.version, kept.ids, kept.found, kept.scores), added
    return _with_added(kept, after, added), added


def _less_deleted(neighbours: Neighbours, live: np.ndarray) -> Neighbours:
    rows = np.isin(neighbours.ids, live)
    found, scores = neighbours.found[rows].copy(), neighbours.scores[rows].copy()
    gone = (found >= 0) & ~np.isin(found, live)
    found[gone], scores[gone] = -1, -np.inf
    return Neighbours(neighbours.generation, neighbours.ids[rows], found, scores)


def _with_added(kept: Neighbours, store: LiveStore, added: np.ndarray) -> Neighbours:
    """`kept` with a row for each added id and the added ids entered into the rows they reach."""
    count = kept.found.shape[1]
    depth = min(max(REVERSE_DEPTH, count) + 1, len(store))
    hits = store.search(store.vectors(added), depth)
    found = np.full((len(added), count), -1, np.int64)
    scores = np.full((len(added), count), -np.inf, np.float32)
    reverse: dict[int, list[tuple[float, int]]] = {}
    for row, (own, ranked) in enumerate(zip(added.tolist(), hits)):
        others = [(i, s) for i, s in ranked if i != own]
        found[row, : min(count, len(others))] = [i for i, _ in others[:count]]
        scores[row, : min(count, len(others))] = [s for _, s in others[:count]]
        for other, score in others:
            reverse.setdefault(other, []).append((score, own))
    ids = np.concatenate([kept.ids, added])
    found, scores = np.concatenate([kept.found, found]), np.concatenate([kept.scores, scores])
    # the existing images the added ones reached (an added image's own search ranked the others)
    reached = np.nonzero(np.isin(kept.ids, np.fromiter(reverse, np.int64, len(reverse))))[0]
    for row in reached.tolist():
        entering = reverse[int(kept.ids[row])]
        merged = [(float(s), int(i)) for i, s in zip(found[row], scores[row]) if i >= 0] + entering
        merged.sort(key=lambda hit: -hit[0])
        merged = merged[:count]
        found[row], scores[row] = -1, -np.inf
        found[row, : len(merged)] = [i for _, i in merged]
        scores[row, : len(merged)] = [s for s, _ in merged]
    return Neighbours(store.version, ids, found, scores)


def touching(neighbours: Neighbours, added: np.ndarray) -> Neighbours:
    """The rows of `neighbours` that hold an added id, as theirs or among their nearest."""
    rows = np.isin(neighbours.ids, added) | np.isin(neighbours.found, added).any(axis=1)
    return Neighbours(
        neighbours.generation, neighbours.ids[rows], neighbours.found[rows], neighbours.scores[rows]
    )
