"""The levers bench/quality_copies.py measures: each a change of settings and a patch of module
constants, applied only around its own variant's searches. "today" is the product before any of
them (every lever off); "default" the product as shipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from search_by_image.ranking import (
    alignment,
    expansion,
    local_features,
    query_keypoints,
    rotations,
    verification,
    verifier,
)
from search_by_image.ranking.indexed_keypoints import IndexedKeypoints


@contextmanager
def patched(*constants: tuple[Any, str, Any]) -> Iterator[None]:
    """Module constants set for the block: (module, attribute, value) each."""
    saved = [(module, attribute, getattr(module, attribute)) for module, attribute, _ in constants]
    for module, attribute, value in constants:
        setattr(module, attribute, value)
    try:
        yield
    finally:
        for module, attribute, value in saved:
            setattr(module, attribute, value)


def _patch(*constants: tuple[Any, str, Any]) -> Callable[[], Any]:
    return lambda: patched(*constants)


WIDE_OFF = (verifier, "WIDE_TOP", 0)
STRAIGHTEN_OFF = (rotations, "STRAIGHTEN", False)
#: copies ordered by lifted score alone; expansion's scores may lift an unverified result over a
#: verified one; a small detail's pixels not compared
ORDER_OFF = ((verification, "COPY_ORDER_STEP", float("inf")), (expansion, "VERIFIED_FIRST", False))
FOOTPRINT_OFF = (alignment, "FOOTPRINT_PX", 10**9)
#: no stored keypoints read: every indexed image's extracted from its thumbnail when verified
STORE_OFF = (IndexedKeypoints, "stored", lambda self, images: [None] * len(images))
FINER_OFF = (verifier, "FINER", False)
#: the finer keypoints matched once, at the usual ratio; a flat picture's motion left unmeasured
LOOSE_OFF = (verification, "FINER_RATIO", None)
FLAT_OFF = (alignment, "FLAT_EDGE_LEVELS", alignment.EDGE_LEVELS)
#: a large upload's own finer keypoints not tried against a big photo's finer set
LARGER_QUERY_OFF = (verification, "FINER_QUERY", False)
#: the large upload's finer keypoints only past a hint of the source (8 inliers at the thumbnail-size
#: query's loosest; the looser second match from 12 at the first), or on every big photo checked
LARGER_QUERY_HINTED = (
    (verification, "FINER_QUERY_INLIERS", 8),
    (verification, "FINER_QUERY_LOOSE_INLIERS", 12),
)
LARGER_QUERY_EVERYWHERE = (
    (verification, "FINER_QUERY_INLIERS", 0),
    (verification, "FINER_QUERY_LOOSE_INLIERS", 0),
)
#: the product before the larger query went to every big photo: its hints, each ratio's own
#: nearest-neighbour search, folded matches compared by their pixels
BEFORE_EVERY_PHOTO = (
    *LARGER_QUERY_HINTED,
    (local_features, "RECENT_PAIRS", 0),
    (verification, "MIN_SPREAD_PX", 0.0),
)
#: verified results' places through expansion, copies' correlation band, aligned results first
PLACES_OFF = (expansion, "VERIFIED_PLACES", False)
BAND_OFF = (verification, "COPY_ORDER_BAND", False)
ALIGNED_OFF = (verification, "ALIGNED_FIRST", False)
FINER_ALIGNED_OFF = (verification, "FINER_ALIGNED", False)
#: a small upload's keypoints found on its own pixels, not on a view enlarged to SMALL_SIDE
SMALL_OFF = (query_keypoints, "SMALL_SIDE", 0)
#: results aligned but moving ordered by lifted score, not by their motion
ALIGNED_MOTION_OFF = (verification, "ALIGNED_BY_MOTION", False)
ALL_OFF = (
    WIDE_OFF,
    STRAIGHTEN_OFF,
    *ORDER_OFF,
    FOOTPRINT_OFF,
    STORE_OFF,
    PLACES_OFF,
    BAND_OFF,
    ALIGNED_OFF,
    FINER_ALIGNED_OFF,
    SMALL_OFF,
    ALIGNED_MOTION_OFF,
)


def _without(*kept: tuple[Any, str, Any]) -> Callable[[], Any]:
    """Every lever off but `kept` (the default's value of each patch left as it is)."""
    return _patch(*(c for c in ALL_OFF if c not in kept))


#: name -> (settings changes, the patch of its searches)
LEVERS: dict[str, tuple[dict, Callable[[], Any]]] = {
    "today": ({}, _patch(*ALL_OFF)),
    "default": ({}, _patch()),
    "verify top 30 always": ({"verify_top": 30}, _patch(*ALL_OFF)),
    "wide 40 when weak": ({}, _without(WIDE_OFF)),
    "wide 50 when weak": ({}, _patch((verifier, "WIDE_TOP", 50), *ALL_OFF[1:])),
    "straightened view": ({}, _without(STRAIGHTEN_OFF)),
    "order of copies, verified first": ({}, _without(*ORDER_OFF)),
    "detail footprint": ({}, _without(FOOTPRINT_OFF)),
    "default without wide": ({}, _patch(WIDE_OFF)),
    "before stored keypoints": ({}, _patch(STORE_OFF)),
    "stored keypoints, thumbnail set only": ({}, _patch(FINER_OFF)),
    "before flat-picture checks": ({}, _patch(LOOSE_OFF, FLAT_OFF)),
    "finer set matched loosely only": ({}, _patch(FLAT_OFF)),
    "flat motion only": ({}, _patch(LOOSE_OFF)),
    "verified first": ({}, _patch((expansion, "VERIFIED_FIRST", True))),
    "verified over checked": ({}, _patch((verification, "VERIFIED_OVER_CHECKED", 1.0))),
    "verified over checked 3x": ({}, _patch((verification, "VERIFIED_OVER_CHECKED", 3.0))),
    "before late checks": ({}, _patch((verifier, "LATE_CHECKS", 0))),
    "copies by score after correlation": ({}, _patch((verification, "COPIES_BY_MOTION", False))),
    "verified lift capped at 50 inliers": ({}, _patch((verification, "BONUS_CAP", 50))),
    "verified lift doubled": ({}, _patch((verification, "BONUS", 1.0))),
    "before larger query keypoints": ({}, _patch(LARGER_QUERY_OFF)),
    "larger query from a hint": ({}, _patch(*LARGER_QUERY_HINTED)),
    "larger query on every big photo": ({}, _patch(*LARGER_QUERY_EVERYWHERE)),
    "before larger query on every big photo": ({}, _patch(*BEFORE_EVERY_PHOTO)),
    "folded matches compared": ({}, _patch((verification, "MIN_SPREAD_PX", 0.0))),
    "expansion: query weighs 1.5": ({}, _patch((expansion, "QUERY_WEIGHT", 1.5))),
    "before verified places": ({}, _patch(PLACES_OFF)),
    "copies by correlation grid": ({}, _patch(BAND_OFF)),
    "aligned not first": ({}, _patch(ALIGNED_OFF)),
    "finer matches kept only as copies": ({}, _patch(FINER_ALIGNED_OFF)),
    "before places, band, aligned": ({}, _patch(PLACES_OFF, BAND_OFF, ALIGNED_OFF, FINER_ALIGNED_OFF)),
    "small queries not enlarged": ({}, _patch(SMALL_OFF)),
    "aligned results by lifted score": ({}, _patch(ALIGNED_MOTION_OFF)),
    "small queries not enlarged, aligned by score": ({}, _patch(SMALL_OFF, ALIGNED_MOTION_OFF)),
}
