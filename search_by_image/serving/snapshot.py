"""What one request reads: a collection's index, metadata table and embedder, as one immutable set.

A request takes its collection's snapshot once (`Collection.require`) and passes it down: the
filters are applied to its metadata, the upload decoded at its embedder's size, the query embedded
and searched with its embedder and index, and the results joined with its metadata. A write or a
reload swaps a new snapshot into the collection meanwhile (by reference), never into a request.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from search_by_image.catalog.filters import Condition
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.errors import UnknownImage
from search_by_image.images.capture_time import CaptureTime
from search_by_image.index.live_store import LiveStore
from search_by_image.model.embedder import Embedder
from search_by_image.ranking import expansion, rotations, verification
from search_by_image.ranking.match_kinds import MatchKind, thresholds_for
from search_by_image.ranking.verifier import Verifier
from search_by_image.serving.batcher import QueryBatcher

#: (inode, mtime_ns, size) of the manifest and of the metadata CSV when the snapshot was loaded
Stamp = tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]


@dataclass(frozen=True)
class Hits:
    snapshot: Snapshot
    hits: list[tuple[int, float]]
    #: images that passed the filters (None without filters)
    matched: int | None
    embed_ms: float
    search_ms: float
    #: local verification of each hit (verification.Check; None: not verified)
    checks: list[verification.Check | None] = field(default_factory=list)
    verify_ms: float = 0.0
    #: with collapse=copies: how many other results (copies) each hit stands for
    copies: list[int] = field(default_factory=list)

    def labelled(self) -> list[Labelled]:
        """Each hit with its path and what it means (match_kinds: by the check where one ran)."""
        store = self.snapshot.store
        kinds = thresholds_for(store.whitening)
        checks = self.checks or [None] * len(self.hits)
        return [
            Labelled(
                image_id,
                store.path_of(image_id),
                score,
                kinds.kind(score) if check is None else kinds.checked_kind(score, check.copy, check.verified),
                check,
            )
            for (image_id, score), check in zip(self.hits, checks)
        ]


@dataclass(frozen=True)
class Labelled:
    """One result: its image, score, kind (`copy`, `similar`, `weak`) and local check."""

    id: int
    path: str
    score: float
    match: MatchKind
    check: verification.Check | None

    @property
    def inliers(self) -> int | None:
        return None if self.check is None else self.check.inliers


@dataclass(frozen=True)
class Snapshot:
    #: the collection's name
    name: str
    store: LiveStore
    metadata: MetadataView
    embedder: Embedder
    batcher: QueryBatcher
    stamp: Stamp
    #: checks the top results with local features (None: off, setting verify_top 0)
    verifier: Verifier | None = None
    #: ranks the results again with the query expanded by its verified results (expansion.py;
    #: setting query_expansion, only with a verifier)
    expand: bool = False
    #: also search with the query turned a quarter each way (rotations.py; setting query_rotations)
    rotations: bool = False

    def allowed(self, conditions: dict[str, Condition]) -> np.ndarray | None:
        """The ids (sorted) that pass the filters (FilterError for one this metadata cannot
        apply); None without filters. One indexed SQL query: cheap next to a forward pass, so a
        request checks its filters first. The database may already hold a write this snapshot
        has not applied yet: the search ignores ids it does not hold."""
        if not conditions:
            return None
        return self.metadata.select(conditions)

    def search(
        self,
        image: Image.Image,
        k: int,
        allowed: np.ndarray | None = None,
        offset: int = 0,
        taken: Callable[[], CaptureTime | None] | None = None,
        larger: Callable[[], np.ndarray | None] | None = None,
    ) -> Hits:
        """Results `offset` to `offset + k` for an image, among the `allowed` ids; `taken`: when
        the photo was taken (capture_time.py), read if a result is a copy by its pixels; `larger`:
        the upload decoded larger, read if a big photo's finer keypoints are tried
        (query_keypoints.py)."""
        started = time.perf_counter()
        preprocessing = self.embedder.preprocessing
        views = rotations.views(image, preprocessing) if self.rotations else [preprocessing(image)]
        queries = self.batcher.embed_all(views)
        embedded = time.perf_counter()
        wanted = max(offset + k, self._fetched)
        hits = rotations.merged(self.store.search(queries, wanted, allowed), wanted)
        searched = time.perf_counter()
        hits, checks = self._verify(
            hits,
            lambda: verification.Query.of_image(np.asarray(image.convert("RGB")), taken, larger),
            queries,
        )
        return Hits(
            self,
            hits[offset : offset + k],
            None if allowed is None else len(allowed),
            (embedded - started) * 1e3,
            (searched - embedded) * 1e3,
            checks[offset : offset + k],
            (time.perf_counter() - searched) * 1e3,
        )

    @property
    def _fetched(self) -> int:
        """Results a search needs beyond its page: those verified, and those expansion re-ranks."""
        if self.verifier is None:
            return 0
        return max(self.verifier.depth, expansion.DEPTH if self.expand else 0)

    def _verify(
        self, hits: list[tuple[int, float]], query, descriptor: np.ndarray
    ) -> tuple[list[tuple[int, float]], list[verification.Check | None]]:
        """Hits checked and re-ranked by `query()`'s keypoints, then, with expansion, ranked
        again by the query's `descriptor` expanded with its verified results."""
        if self.verifier is None:
            return hits, [None] * len(hits)
        query = functools.cache(query)  # made once, for the late checks too
        hits, checks = self.verifier.rerank(self.store, hits, query)
        if self.expand:
            hits, checks = expansion.rerank(self.store, descriptor, hits, checks)
            # results expansion lifted into the checked top unchecked: checked, ranked again
            late = self.verifier.check_late(self.store, hits, checks, query)
            if late is not checks:
                hits, checks = expansion.rerank(self.store, descriptor, hits, late)
        return hits, checks

    def similar(
        self, image_id: int, k: int, allowed: np.ndarray | None = None, offset: int = 0
    ) -> tuple[str, Hits]:
        """ "More like this": the images nearest an indexed one, from its stored descriptor (no
        decode, no forward pass), itself left out. Returns its path and the hits."""
        store = self.store
        if image_id not in store:
            raise UnknownImage(f"collection {self.name!r} has no image with id {image_id}")
        started = time.perf_counter()
        (query,) = store.vectors([image_id])
        (hits,) = store.search(query[None], max(offset + k, self._fetched) + 1, allowed)
        searched = time.perf_counter()
        verifier = self.verifier
        others, checks = self._verify(
            [hit for hit in hits if hit[0] != image_id],
            lambda: verifier.query(store, image_id) if verifier else None,
            query,
        )
        matched = None if allowed is None else len(allowed) - int(np.isin(image_id, allowed))
        return store.path_of(image_id), Hits(
            self,
            others[offset : offset + k],
            matched,
            0.0,
            (searched - started) * 1e3,
            checks[offset : offset + k],
            (time.perf_counter() - searched) * 1e3,
        )
