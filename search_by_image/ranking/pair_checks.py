"""Which pairs of a collection a duplicates pass checks with local verification, in which order,
and which it leaves unchecked.

Checked: the stored neighbour pairs scoring at least `similar` (match_kinds; 99% of the altered
copies do) and each image's CHECKED_NEAREST nearest. A pair whose two images verified copies
already join (through others of their group) is not checked when its turn comes: its answer
could not change the groups, only add a link inside one. It is kept as `implied`, and checked
later only where the links that joined it are left out (`find_groups`: a pair decided apart, an
image outside a filter, an image deleted since).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from search_by_image.devices import cpu_threads
from search_by_image.index.live_store import LiveStore
from search_by_image.ranking.check_processes import MIN_PAIRS, ProcessChecks
from search_by_image.ranking.duplicates import Joined, Neighbours, Pairs
from search_by_image.ranking.match_kinds import thresholds_for

#: Each image's nearest this many are checked for copies whatever their score: a crop with a
#: border or a rotated, recompressed copy can score under `similar` and still be first or second.
CHECKED_NEAREST = 3
#: Checked pairs whose images' stored keypoints are read together (`verified_copies`).
PREFETCH_LINKS = 4096
#: Checks under way at once, per thread: a pair is left unchecked when the copies found before
#: its turn join its images, so the fewer ahead of the answers, the more are left (two a thread
#: keep each thread busy while the next is handed out).
AHEAD = 2
#: Within each run of this many pairs (in `reuse_order`), the best scoring are checked first:
#: likely copies, they join a group before its weaker pairs' turn, whatever is under way
#: meanwhile (in `reuse_order` alone a group's pairs are all under way at once).
BEST_FIRST_LINKS = 1024
#: Pairs between two reports of progress.
PROGRESS_LINKS = 256
#: A pair's mirror image is tried (a second set of keypoints, extracted, then matched) only where
#: it scores this far from `similar` towards `copy` (0.375 at 512-d): the 467 mirrored Holidays
#: copies of seeds 1-8 (several edits at once among them) score 0.385 and up; of the pairs whose
#: mirror a pass tried at `similar` and found no copy, 65% score under it (bench/README.md).
MIRROR_TOWARDS_COPY = 0.3

Pair = tuple[int, int]
#: `is_copy(a, b, try_mirror)`: verification.Verifier.is_copy bound to a store
IsCopy = Callable[[int, int, bool], bool]


@dataclass(frozen=True)
class Verified:
    """What a pass's checks found: the pairs verified copies, with their scores, and the pairs
    left unchecked because verified copies already joined their images (`implied`)."""

    copies: dict[Pair, float]
    implied: Pairs

    def within(self, store: LiveStore) -> Verified:
        """These pairs less those with an image `store` no longer holds."""
        ids = np.asarray(store.ids)
        live = set(ids.tolist())
        copies = {p: s for p, s in self.copies.items() if p[0] in live and p[1] in live}
        return Verified(copies, self.implied.within(ids))

    def plus(self, other: Verified) -> Verified:
        return Verified(self.copies | other.copies, self.implied.plus(other.implied))


def verified_copies(
    store: LiveStore,
    neighbours: Neighbours,
    is_copy: IsCopy,
    threads: int | None = None,
    only: np.ndarray | None = None,
    prefetch: Callable[[list[int]], object] | None = None,
    known: Verified | None = None,
    progress: Callable[[int, int], None] | None = None,
    processes: ProcessChecks | None = None,
) -> Verified:
    """The checked pairs of `neighbours` (the module's docstring) that `is_copy` confirms, mirror
    images tried only for pairs scoring at least `mirror_score` (mirrored copies often score under
    `copy`; a mirror costs a second set of keypoints). Pairs already joined by the copies found
    (or `known`'s) are left as implied. Checked on `threads` threads of their own (OpenCV and
    FAISS release the GIL), not on the searches' verification pool, whose queue they would hold
    up. `only`: just the pairs with one of these ids (a live add's). `prefetch(ids)`: called with
    the images of each PREFETCH_LINKS pairs before they are checked (`Verifier.preload`).
    `progress(done, total)`: the pairs checked or left implied so far, of all, now and then.
    `processes`: checked in worker processes instead, when there are MIN_PAIRS or more (the
    workers read their own keypoints: no `prefetch`), shut down at the end."""
    similar = thresholds_for(store.whitening).similar
    mirrored = mirror_score(store)
    checked = list(neighbours.links(similar, CHECKED_NEAREST))
    if only is not None:
        new = set(only.tolist())
        checked = [link for link in checked if link[0] in new or link[1] in new]
    checked = reuse_order(checked)
    checked = [
        link
        for start in range(0, len(checked), BEST_FIRST_LINKS)
        for link in sorted(checked[start : start + BEST_FIRST_LINKS], key=lambda link: -link[2])
    ]
    joined = Joined(known.copies if known is not None else ())
    copies: dict[Pair, float] = {}
    implied: dict[Pair, float] = {}
    in_processes = processes is not None and len(checked) >= MIN_PAIRS
    if in_processes:
        prefetch = None  # each worker reads the keypoints it needs
    stop, submit, workers = _checks(store, is_copy, threads, processes if in_processes else None)
    running: dict[Future[bool], tuple[int, int, float]] = {}

    def settle(done: Iterable[Future[bool]]) -> None:
        for future in done:
            a, b, score = running.pop(future)
            if future.result():
                copies[(a, b)] = score
                joined.join(a, b)

    try:
        for start in range(0, len(checked), PREFETCH_LINKS):
            chunk = checked[start : start + PREFETCH_LINKS]
            if prefetch is not None:
                prefetch(list(dict.fromkeys(i for a, b, _ in chunk for i in (a, b))))
            for number, (a, b, score) in enumerate(chunk, start):
                if progress is not None and number % PROGRESS_LINKS == 0:
                    progress(number, len(checked))
                while len(running) >= AHEAD * workers:
                    settle(wait(running, return_when=FIRST_COMPLETED).done)
                if joined.joined(a, b):
                    implied[(a, b)] = score
                else:
                    running[submit(a, b, score >= mirrored)] = (a, b, score)
        settle(wait(running).done)
        if progress is not None:
            progress(len(checked), len(checked))
    finally:  # a failing check ends the pass without the pairs still queued
        stop()
    return Verified(copies, Pairs.of(implied))


def mirror_score(store: LiveStore) -> float:
    """The least score at which a pass tries a pair's mirror image (MIRROR_TOWARDS_COPY)."""
    kinds = thresholds_for(store.whitening)
    return kinds.similar + MIRROR_TOWARDS_COPY * (kinds.copy - kinds.similar)


def _checks(
    store: LiveStore, is_copy: IsCopy, threads: int | None, processes: ProcessChecks | None
) -> tuple[Callable[[], None], Callable[[int, int, bool], Future[bool]], int]:
    """Where a pass's checks run: what stops them (queued ones cancelled), what submits a check,
    and how many run at once; worker processes (`processes`), else `threads` threads (one per
    core) calling `is_copy`."""
    if processes is not None:
        workers = processes.started(store, AHEAD)
        return functools.partial(workers.shutdown, cancel_futures=True), workers.submit, processes.workers
    count = threads or cpu_threads()
    threaded = ThreadPoolExecutor(count, thread_name_prefix="duplicates")

    def submit(a: int, b: int, try_mirror: bool) -> Future[bool]:
        return threaded.submit(is_copy, a, b, try_mirror)

    return functools.partial(threaded.shutdown, cancel_futures=True), submit, count


def reuse_order(links: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """`links` ordered so that those sharing an image come close together: the images numbered
    depth first over the links' graph, the links by their later image. A check reads both
    images' keypoints from the verifier's bounded cache; in the neighbour lists' order a link's
    second image is anywhere in the collection, extracted again once the cache has moved on.
    A group's links then also come one after another, so its first verified links leave the
    others implied."""
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
