"""A collection's verifier: the keypoints of its images, stored when they were indexed or else
extracted from their thumbnails (indexed_keypoints.py), the most recently used kept in a bounded
cache keyed by the thumbnail's name (which changes with the image), so they follow live adds and
deletes; and the capture times of the images that are copies by their pixels. The checks
themselves are verification.py's.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from search_by_image.catalog.locations import Location
from search_by_image.images import capture_time
from search_by_image.images.capture_time import CaptureTime
from search_by_image.index.live_store import LiveStore
from search_by_image.ranking.indexed_keypoints import PASS_GREYS, IndexedKeypoints
from search_by_image.ranking.local_features import Keypoints
from search_by_image.ranking.match_kinds import thresholds_for
from search_by_image.ranking.verification import COPY_INLIERS, Check, Query, check, reorder_checks

#: what a Verifier cache holds (`Verifier._keep`)
Kept = TypeVar("Kept")
#: Thumbnails' keypoints kept in memory per collection (~20 KB each: their pixels are read again
#: from the thumbnail for the few pairs that align, `local_features.Keypoints.without_grey`).
CACHED_IMAGES = 2048
#: Keypoints kept at most while a duplicates pass runs (`Verifier.holding`: ~20 KB each, 650 MB):
#: each image of a collection this size or less is extracted once per pass.
PASS_IMAGES = 32768
#: Threads checking results side by side, at most one per core: 10 results' checks take 2-5 ms
#: each, so a few threads halve a search's verification without many idle threads.
WORKERS = 4
#: Results checked when the first `top` hold no copy and score under a copy's (`weak`): a
#: source the global descriptor ranks low (a small turned detail, a hard recompression) is
#: still found; only such queries pay for the wider check (bench/README.md "Copies as they
#: reach people").
WIDE_TOP = 40
#: Whether a search tries the finer keypoints stored for a big photo where its thumbnail's find
#: no copy (stored_keypoints.py: a small detail of it).
FINER = True
#: Results that query expansion (expansion.py) brings into the first `top` from beyond the checked
#: ones, checked at most this many per search: a source it lifts there is otherwise ranked by its
#: score alone, below checked results, never told a copy (bench/README.md "Order of results").
LATE_CHECKS = 3


class ImageFiles(Protocol):
    """What a check reads of a store: an id's path, and its file's fingerprint when indexed
    (a `LiveStore`, or a worker's two images: check_processes.py)."""

    def path_of(self, image_id: int) -> str: ...

    def fingerprint_of(self, path: str) -> tuple[int, int]: ...


def weak(best_score: float, checks: list[Check | None], copy_score: float) -> bool:
    """Whether a search's first results look like no copy of the query: none verified a copy,
    and the best score under a copy's."""
    return best_score < copy_score and not any(c is not None and c.copy for c in checks)


class Verifier:
    """One collection's checks: the keypoints of its images, computed from their thumbnails
    (made first where missing, as GET /thumbnails would), the most recently used kept in
    memory; `top` results of a search are checked."""

    def __init__(self, location: Location, max_image_pixels: int, top: int, capacity: int = CACHED_IMAGES):
        self.location = location
        self.top = top
        self.max_image_pixels = max_image_pixels
        self.images = IndexedKeypoints(location, max_image_pixels)
        self.thumbnails = self.images.thumbnails
        self.capacity = capacity
        self._cached: OrderedDict[Path, Keypoints] = OrderedDict()
        #: capture times of the images found copies by their pixels, keyed like the keypoints
        self._taken: OrderedDict[Path, CaptureTime | None] = OrderedDict()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def holding(self, images: int) -> Iterator[None]:
        """Keypoints of up to `images` (at most PASS_IMAGES) and PASS_GREYS greys kept meanwhile:
        a duplicates pass reads each image's for several pairs, too far apart for the usual
        cache (one extraction per image, not one per pair); back to `capacity` after."""
        usual, greys = self.capacity, self.images.greys_kept
        with self._lock:
            self.capacity = max(usual, min(images, PASS_IMAGES))
        self.images.keep_greys(max(greys, PASS_GREYS))
        try:
            yield
        finally:
            self.images.keep_greys(greys)
            with self._lock:
                self.capacity = usual
                for cache in (self._cached, self._taken):
                    while len(cache) > usual:
                        cache.popitem(last=False)

    def of(self, store: ImageFiles, image_id: int, mirror: bool = False) -> Keypoints | None:
        """The keypoints of an indexed image: stored when it was indexed, else extracted from its
        thumbnail (indexed_keypoints.py); of its mirror image if `mirror` (never stored:
        extracted, and kept, since duplicates try it for many pairs). None if neither can be had."""
        path = store.path_of(image_id)
        fingerprint = store.fingerprint_of(path)
        key = self.images.key(path, fingerprint, mirror)
        with self._lock:
            found = self._cached.get(key)
            if found is not None:
                self._cached.move_to_end(key)
                return found
        keypoints = None if mirror else self.images.stored([(path, fingerprint)])[0]
        if keypoints is not None:
            self._keep(self._cached, key, keypoints)
            return keypoints
        keypoints = self.images.extracted(path, fingerprint, mirror)
        if keypoints is not None:
            read = functools.partial(self.images.grey, path, fingerprint, mirror)
            self._keep(self._cached, key, keypoints.without_grey(read))
        return keypoints

    def stored(self, store: LiveStore, ids: Sequence[int]) -> dict[int, Keypoints]:
        """The stored keypoints of these indexed images (one read per few hundred), not cached;
        the ids with none stored are left out (`of` extracts theirs)."""
        images = [(path, store.fingerprint_of(path)) for path in map(store.path_of, ids)]
        return {i: k for i, k in zip(ids, self.images.stored(images)) if k is not None}

    def preload(self, store: LiveStore, ids: Sequence[int]) -> int:
        """The stored keypoints of these images read into the cache at once (inside `holding`,
        for a pass over them); how many were stored."""
        found = self.stored(store, ids)
        for image_id, keypoints in found.items():
            path = store.path_of(image_id)
            self._keep(self._cached, self.images.key(path, store.fingerprint_of(path)), keypoints)
        return len(found)

    def query(self, store: ImageFiles, image_id: int) -> Query | None:
        """An indexed image as a query (more like this, duplicates), its mirror made on demand."""
        keypoints = self.of(store, image_id)
        if keypoints is None:
            return None
        mirror = functools.partial(self.of, store, image_id, True)
        return Query(keypoints, mirror, lambda: self.taken(store, image_id))

    def taken(self, store: ImageFiles, image_id: int) -> CaptureTime | None:
        """An indexed image's capture time, read from its file's EXIF (capture_time.py) the first
        time a pair with it is a copy by its pixels."""
        path = store.path_of(image_id)
        key = self.thumbnails.file(path, store.fingerprint_of(path))  # changes with the file
        with self._lock:
            if key in self._taken:
                return self._taken[key]
        file = self.location.served_file(path)
        found = None if file is None else capture_time.read(file)
        self._keep(self._taken, key, found)
        return found

    def _keep(self, cache: OrderedDict[Path, Kept], key: Path, value: Kept) -> None:
        """`value` in `cache` under `key`, the oldest entries past `capacity` dropped."""
        with self._lock:
            cache[key] = value
            while len(cache) > self.capacity:
                cache.popitem(last=False)

    def _moment(self, check: Check, query: Query, store: LiveStore, image_id: int) -> Check:
        """`check`, another shot where it is a copy by its pixels and the capture times are apart."""
        if check.copy and capture_time.apart(query.taken(), self.taken(store, image_id)):
            return replace(check, other_moment=True)
        return check

    @property
    def depth(self) -> int:
        """Results a search must hand `rerank`: the widened first stage's (`WIDE_TOP`)."""
        return max(self.top, WIDE_TOP) if self.top else 0

    def rerank(
        self, store: LiveStore, hits: list[tuple[int, float]], query: Callable[[], Query | None]
    ) -> tuple[list[tuple[int, float]], list[Check | None]]:
        """The top `top` hits checked against `query()` and re-ranked (`reorder`); when none of
        them is a copy and the best score is under a copy's (`weak`), the results down to
        WIDE_TOP are checked too. The others as they were, unchecked (None). The query's mirror
        image is tried only for results whose score is a copy's (match_kinds), where a mirrored
        copy would be."""
        top = min(self.top, len(hits))
        if not top:
            return hits, [None] * len(hits)
        copy_score = thresholds_for(store.whitening).copy
        # the results' keypoints (thumbnails not yet in memory) while this thread makes the query's
        candidates = self._keypoints(store, hits[:top])
        asked = query()
        if asked is None:
            return hits, [None] * len(hits)
        checks = self._checks(store, asked, hits[:top], candidates, copy_score)
        if weak(hits[0][1], checks, copy_score):
            wide = hits[top:WIDE_TOP]
            checks += self._checks(store, asked, wide, self._keypoints(store, wide), copy_score)
            top += len(wide)
        order = reorder_checks(np.array([score for _, score in hits[:top]]), checks)
        return [hits[i] for i in order] + hits[top:], [checks[i] for i in order] + [None] * (len(hits) - top)

    def check_late(
        self,
        store: LiveStore,
        hits: list[tuple[int, float]],
        checks: list[Check | None],
        query: Callable[[], Query | None],
    ) -> list[Check | None]:
        """`checks` with up to LATE_CHECKS of the first `top` hits never checked (None) checked
        against `query()` (made once: the caller caches it); the same list when none is."""
        late = [i for i, found in enumerate(checks[: self.top]) if found is None][:LATE_CHECKS]
        asked = query() if late else None
        if asked is None:
            return checks
        wanted = [hits[i] for i in late]
        copy_score = thresholds_for(store.whitening).copy
        found = self._checks(store, asked, wanted, self._keypoints(store, wanted), copy_score)
        checks = list(checks)
        for i, one in zip(late, found):
            checks[i] = one
        return checks

    def _keypoints(self, store: LiveStore, hits: list[tuple[int, float]]) -> list[Future[Keypoints | None]]:
        """The hits' keypoints, read or extracted on the verification pool (thumbnails not yet
        in memory) while the caller goes on."""
        return [_pool().submit(self.of, store, image_id) for image_id, _ in hits]

    def _checks(
        self,
        store: LiveStore,
        asked: Query,
        hits: list[tuple[int, float]],
        candidates: list[Future[Keypoints | None]],
        copy_score: float,
    ) -> list[Check | None]:
        """`hits` checked against `asked` side by side, their keypoints' futures `candidates`."""

        def checked(candidate: Future[Keypoints | None], image_id: int, score: float) -> Check | None:
            # submitted after `candidate`: the pool's queue is first in, first out, so by now
            # that task is running or done, and this wait cannot hold up its own pool
            keypoints = candidate.result()
            if keypoints is None:
                return None
            return self._moment(
                check(asked, keypoints, score >= copy_score, finer=FINER), asked, store, image_id
            )

        if not hits:
            return []
        return list(_pool().map(checked, candidates, *zip(*hits)))

    def is_copy(self, store: ImageFiles, a: int, b: int, try_mirror: bool = True) -> bool:
        """Whether two indexed images are copies of one another (duplicates), mirror images too
        if `try_mirror`: checked the other way round (without the mirror) when the first finds a
        copy's inliers but not a copy (a border or caption added to one side covers part of the
        other once warped, not the reverse); never when both were taken, and at other moments
        (capture_time.py). The motion is measured on the compared part's box (a pass's cost)."""
        query, candidate = self.query(store, a), self.of(store, b)
        if query is None or candidate is None:
            return False
        found = check(query, candidate, try_mirror, boxed=True)
        if not found.copy and found.inliers >= COPY_INLIERS:
            query, candidate = self.query(store, b), self.of(store, a)
            if query is None or candidate is None:
                return False
            found = check(query, candidate, False, boxed=True)
        return found.copy and not capture_time.apart(self.taken(store, a), self.taken(store, b))


@cache
def _pool() -> ThreadPoolExecutor:
    """The process' verification threads, shared by all searches (OpenCV and FAISS release the
    GIL: a search's results are checked side by side, bench/README.md "Local verification")."""
    return ThreadPoolExecutor(min(WORKERS, os.cpu_count() or 1), thread_name_prefix="verify")


@cache
def available() -> bool:
    """Whether OpenCV is installed (requirements.txt; a custom install may lack it: then
    results are ranked and labelled by their scores alone). Found without importing it, so a
    service that never searches never pays its import (~0.4 s, ~35 MB)."""
    return importlib.util.find_spec("cv2") is not None
