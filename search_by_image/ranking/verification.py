"""Search results checked with local features: the top results re-ranked, and copies told apart
from other shots of the same scene (local_features in the frame of the collection's thumbnails).

The indexed side's keypoints are computed once, when an image is indexed or added, and stored
(catalog/keypoint_store.py, stored_keypoints.py): the thumbnail's (448 px), and for a big photo a
finer set from a larger view, tried where the thumbnail's find no copy. An image with none stored
(a collection indexed before) has its keypoints extracted from its thumbnail when verified
(indexed_keypoints.py); either are kept in a bounded in-memory cache (`Verifier`, keyed by the
thumbnail's name, which changes with the image). Costs and the thresholds' measurements:
bench/README.md "Local verification" and "Stored keypoints".

- Re-ranking (`reorder`): among the top `verify_top` results, one whose keypoints one
  similarity transform explains (>= RERANK_INLIERS: the same scene; 99% of pairs of different
  Holidays scenes have at most 8) is lifted by up to BONUS, more for more inliers; verified
  copies come before every other result.
- Copies (`Check.copy`): >= COPY_INLIERS inliers; once aligned, the two images' pixels
  correlate >= COPY_CORRELATION (median over a grid of cells, where the inliers are); and they
  no longer move: <= COPY_MOTION px of dense flow left once one similarity is taken out
  (`alignment.residual_motion`). An edited copy is one similarity of its photo; a burst or
  a re-shot from one spot often correlates as well (13% of the pairs of different shots of one
  Holidays scene did), but its foreground moves against its background, or the camera tilted.
  On holidays_subset300 (altered copies of seeds 1 and 2, both ways): 98.7% of the copies are
  copies, 1.8% of same-scene pairs (16 of 903: bursts with nothing moving, zooms of a distant
  scene), bench/README.md "Copies or another shot". Two photos whose capture times (EXIF) are
  both known and minutes apart are two shots whatever the pixels say (capture_time.py): bursts.
- Query expansion (expansion.py, after `Verifier.rerank`): the verified results' descriptors
  join the query's, and the unverified results are ranked again by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search_by_image.ranking import alignment, local_features
from search_by_image.ranking.local_features import Keypoints
from search_by_image.ranking.query_keypoints import Query

#: Inliers that make a verified match: the same scene (re-ranked up).
RERANK_INLIERS = 12
#: Inliers for a copy, with COPY_CORRELATION of the aligned pixels and at most COPY_MOTION px
#: of residual motion once aligned (alignment.residual_motion).
COPY_INLIERS = 15
COPY_CORRELATION = 0.9
COPY_MOTION = 0.25
#: Lowe's ratio of a second match against a big photo's finer keypoints where the first finds no
#: copy (its 2,000 keypoints hold many look-alikes on a smooth or repetitive picture). Kept only
#: where it finds a copy: looser matches verify unrelated pictures too (bench/README.md "Stored
#: keypoints": 207 of 666 other wallpapers at 0.9, none a copy). None: not matched again.
FINER_RATIO: float | None = 0.9
#: Whether a large upload's own finer keypoints (query_keypoints.py) are matched against a big
#: photo's finer set where the thumbnail-size query finds no copy but FINER_QUERY_INLIERS at its
#: loosest (0: every big photo; a hint of 8 missed sources with 5-7), at RATIO, and from
#: FINER_QUERY_LOOSE_INLIERS there at FINER_RATIO (one nearest-neighbour search for both); kept
#: as a copy or aligned (FINER_ALIGNED). 666 details against every other wallpaper: no false
#: copy (bench/README.md "Larger query keypoints on every big photo").
FINER_QUERY = True
FINER_QUERY_INLIERS = 0
FINER_QUERY_LOOSE_INLIERS = 0
#: Whether those finer matches (FINER_RATIO, FINER_QUERY) are kept where they align (Check.aligned:
#: >= COPY_INLIERS inliers whose pixels correlate >= COPY_CORRELATION, moving or not) rather than
#: only as copies: a detail whose motion reads 0.26 px is still its source's (ALIGNED_FIRST).
FINER_ALIGNED = True
#: Inliers within this many px one way (at local_features.SIDE): the query folded onto a spot of
#: look-alikes, never aligned, so not compared by pixels (no aligned source under 22 px).
MIN_SPREAD_PX = 8.0
#: Copies are ordered by their aligned pixels' correlation in steps of this (`reorder`).
COPY_ORDER_STEP = 0.01
#: Whether the copies within COPY_ORDER_STEP of the closest one's correlation count as equally
#: close (a band under the best), rather than those in the same step of a fixed grid: 0.996 and
#: 0.994 straddle a step of the grid but differ by less than one (bench/README.md "Order of
#: results").
COPY_ORDER_BAND = True
#: Whether copies of one step go by their residual motion, least first: a burst passing for a
#: copy moves a little more (bench/README.md "Order of results": 30 of 35).
COPIES_BY_MOTION = True
#: Whether results aligned but moving (Check.aligned, not a copy) come after the copies, before
#: every other result: a smooth detail correlating 0.97 on 34 inliers but moving 1.6 px is its
#: source, not the picture the global score ranks first (bench/README.md "Order of results").
ALIGNED_FIRST = True
#: Whether those go by their motion, least first, as copies do (a small copy's source reads
#: 0.25-0.4 px, a burst beside it more: bench/README.md "Small copies enlarged"); else by score.
ALIGNED_BY_MOTION = True
#: A checked, unverified result stays below every verified one with this many times its inliers
#: (None: by lifted score alone; measured, not shipped: bench/README.md "Order of results").
VERIFIED_OVER_CHECKED: float | None = None
#: Score lift of a verified result: BONUS * min(inliers, BONUS_CAP) / BONUS_CAP.
BONUS = 0.5
BONUS_CAP = 100


@dataclass(frozen=True)
class Check:
    """What the local features say about one (query, result) pair."""

    inliers: int
    #: aligned pixel correlation (-1: not compared, too few inliers)
    correlation: float = -1.0
    #: px the aligned pixels still move (inf: not measured, too few inliers or correlation)
    motion: float = float("inf")
    #: both photos' capture times are known and apart (capture_time.apart): another shot
    other_moment: bool = False

    @property
    def verified(self) -> bool:
        return self.inliers >= RERANK_INLIERS

    @property
    def aligned(self) -> bool:
        """The pixels agree once aligned: only their motion can still tell a copy from a burst
        (a mirror image, or the pair the other way round, would align no better)."""
        return self.inliers >= COPY_INLIERS and self.correlation >= COPY_CORRELATION

    @property
    def copy(self) -> bool:
        return self.aligned and self.motion <= COPY_MOTION and not self.other_moment


UNCHECKED = Check(0)
#: What reading a thumbnail raises when it is gone or damaged (Pillow).
UNREADABLE = (OSError, ValueError)


def check(
    query: Query, candidate: Keypoints, try_mirror: bool = True, finer: bool = False, boxed: bool = False
) -> Check:
    """Inliers between the query and a candidate and, when they are enough for a copy, their
    aligned pixels' correlation and, when that is a copy's, their residual motion; the query's
    mirror image is tried when the query itself does not align (a mirrored copy) and `try_mirror`;
    with `finer`, the candidate's finer keypoints (a larger view of it, stored at indexing:
    stored_keypoints.py) where its own find no copy (a small detail of a big photo), matched
    again at FINER_RATIO where that finds no copy either, then (FINER_QUERY) with a large
    upload's own finer keypoints (`Query.finer`); `boxed`: the residual motion on the compared
    part's box (alignment.residual_motion)."""
    best = _best(query, candidate, try_mirror, boxed)
    more = candidate.finer() if finer and not best.copy and candidate.finer is not None else None
    if more is not None:
        found = _best(query, more, try_mirror, boxed)
        hint = found.inliers
        if not found.copy and FINER_RATIO:  # matched again, more loosely (`_kept`)
            loose = _best(query, more, try_mirror, boxed, FINER_RATIO)
            found, hint = (loose if _kept(loose, found) else found), loose.inliers
        if FINER_QUERY and not found.copy and hint >= FINER_QUERY_INLIERS:
            larger = _finer_query(query, more, boxed)
            found = larger if larger is not None and _kept(larger, found) else found
        if _rank(found) > _rank(best):
            best = found
    return best


def _kept(looser: Check, found: Check) -> bool:
    """Whether a looser or larger match replaces `found`: as a copy, or (FINER_ALIGNED) aligned
    where `found` is not."""
    return looser.copy or (FINER_ALIGNED and looser.aligned and not found.aligned)


def _rank(found: Check) -> tuple[bool, bool, int]:
    """How `check` weighs a pair's candidate checks: a copy, then (FINER_ALIGNED) aligned, then
    the most inliers."""
    return found.copy, FINER_ALIGNED and found.aligned, found.inliers


def _finer_query(query: Query, more: Keypoints, boxed: bool) -> Check | None:
    """A large upload's finer keypoints against a big photo's finer set, at RATIO then, where
    that verifies, FINER_RATIO: the copy (or, FINER_ALIGNED, aligned match) found, or None."""
    larger = query.finer()
    if larger is None:
        return None
    found = compare(larger, more, boxed)
    if not found.copy and FINER_RATIO and found.inliers >= FINER_QUERY_LOOSE_INLIERS:
        loose = compare(larger, more, boxed, FINER_RATIO)
        found = loose if _kept(loose, found) else found
    return found if _kept(found, UNCHECKED) else None


def _best(
    query: Query, candidate: Keypoints, try_mirror: bool, boxed: bool = False, ratio: float | None = None
) -> Check:
    """`check` against one set of the candidate's keypoints (`ratio`: Lowe's, for `compare`)."""
    best = UNCHECKED
    sides = [lambda: query.keypoints] + ([query.mirrored] if try_mirror else [])
    for side in sides:
        keypoints = side()
        if keypoints is None:
            continue
        result = compare(keypoints, candidate, boxed, ratio)
        if (result.copy, result.inliers) > (best.copy, best.inliers):
            best = result
        if result.aligned:
            break
    return best


def compare(query: Keypoints, candidate: Keypoints, boxed: bool = False, ratio: float | None = None) -> Check:
    """One side of `check`: the cheap measures first, each only where the one before allows a copy
    (`ratio`: Lowe's, local_features.RATIO if None)."""
    found = local_features.verify(query, candidate, ratio)
    if found.inliers < COPY_INLIERS or found.transform is None or not found.spans(MIN_SPREAD_PX):
        return Check(found.inliers)
    try:  # the pixels of a cached image's keypoints are read again from its thumbnail
        query = query.with_grey()
        candidate, aligned, scale = _compared_view(candidate, found)
    except UNREADABLE:  # deleted meanwhile
        return Check(found.inliers)
    shared = alignment.overlap(query, candidate, aligned)
    correlation = alignment.aligned_correlation(candidate, shared)
    if correlation < COPY_CORRELATION:
        return Check(found.inliers, correlation)
    return Check(found.inliers, correlation, alignment.residual_motion(candidate, shared, boxed) / scale)


def _compared_view(
    candidate: Keypoints, found: local_features.Verified
) -> tuple[Keypoints, local_features.Verified, float]:
    """The candidate's pixels to compare the query with, the match in their frame, and their scale
    from the keypoints' frame: its larger view where it has one (`Keypoints.view`: a detail of a
    big photo, whose motion its thumbnail shows too small to measure), else its own grey. The
    motion measured there, divided by the scale, is in the keypoints' frame (COPY_MOTION's)."""
    if candidate.view is None or found.points is None or not len(found.points):
        return candidate.with_grey(), found, 1.0
    try:
        grey, (sx, sy) = candidate.view()
    except UNREADABLE:  # the photo changed or went since it was indexed: its thumbnail then
        return candidate.with_grey(), found, 1.0
    # pixel centres onto pixel centres: x' = s (x + 0.5) - 0.5
    scale, shift = np.array([sx, sy]), np.array([0.5 * sx - 0.5, 0.5 * sy - 0.5])
    points = found.points * scale + shift
    # only around the inliers (what `alignment.overlap` compares): a detail's cost, not the view's
    (left, top), (right, bottom) = points.min(axis=0), points.max(axis=0)
    margin = 2 * alignment.BOX_MARGIN
    x0, y0 = max(0, int(left) - margin), max(0, int(top) - margin)
    grey = grey[y0 : int(bottom) + margin + 1, x0 : int(right) + margin + 1]
    shift -= (x0, y0)
    transform = found.transform * scale[:, None]
    transform[:, 2] += shift
    view = Keypoints(candidate.xy * scale + shift, candidate.descriptors, grey)
    found = local_features.Verified(found.inliers, transform, found.points * scale + shift)
    return view, found, float(scale.mean())


def lifted(scores: np.ndarray, inliers: np.ndarray) -> np.ndarray:
    """Scores with the verified results' lift: BONUS * min(inliers, BONUS_CAP) / BONUS_CAP."""
    lift = np.where(inliers >= RERANK_INLIERS, BONUS * np.minimum(inliers, BONUS_CAP) / BONUS_CAP, 0.0)
    return np.asarray(scores, np.float64) + lift


def reorder(
    scores: np.ndarray,
    inliers: np.ndarray,
    copies: np.ndarray,
    correlation: np.ndarray | None = None,
    verified_first: bool = False,
    motion: np.ndarray | None = None,
) -> np.ndarray:
    """Order of results (scores best first, inliers of each, -1: not verified, whether each is
    a verified copy, their aligned pixels' `correlation` and residual `motion`): verified copies
    first, the closest first (correlation to COPY_ORDER_STEP, then with COPIES_BY_MOTION the least
    motion: a burst passing for a copy correlates less, moves more; with COPY_ORDER_BAND the step
    is the band under the closest copy), then the results aligned but moving (ALIGNED_FIRST; with
    ALIGNED_BY_MOTION the least motion first), then, with `verified_first`, the other verified
    results, then the rest, each part by its lifted score (`lifted`): a source
    above any other shot, however close its score. Stable: unverified results keep their order."""
    copies = np.asarray(copies, bool)
    close = np.zeros(len(copies)) if correlation is None else np.asarray(correlation, np.float64)
    closeness = np.where(copies, np.round(close / COPY_ORDER_STEP), 0.0)
    if COPY_ORDER_BAND and copies.any():  # the band under the closest copy leads, as one step
        closeness[copies & (close >= close[copies].max() - COPY_ORDER_STEP)] = np.inf
    aligned = ALIGNED_FIRST & (np.asarray(inliers) >= COPY_INLIERS) & (close >= COPY_CORRELATION)
    moving = (copies & COPIES_BY_MOTION) | (aligned & ~copies & ALIGNED_BY_MOTION)
    moved = np.where(moving, np.inf if motion is None else np.asarray(motion, np.float64), 0.0)
    verified = verified_first & (np.asarray(inliers) >= RERANK_INLIERS)
    tier = np.where(copies, 0, np.where(aligned, 1, np.where(verified, 2, 3)))
    ranked = _below_verified(lifted(scores, inliers), np.asarray(inliers))
    return np.lexsort((-ranked, moved, -closeness, tier))


def reorder_checks(
    scores: np.ndarray, checks: list[Check | None], verified_first: bool = False
) -> np.ndarray:
    """`reorder` of results by their checks (None: not checked)."""

    def each(name: str, unchecked: object) -> np.ndarray:
        return np.array([unchecked if c is None else getattr(c, name) for c in checks])

    copies, correlation = each("copy", False).astype(bool), each("correlation", -1.0)
    return reorder(scores, each("inliers", -1), copies, correlation, verified_first, each("motion", np.inf))


def _below_verified(ranked: np.ndarray, inliers: np.ndarray) -> np.ndarray:
    """Lifted scores, each checked, unverified one's capped as VERIFIED_OVER_CHECKED says."""
    verified = inliers >= RERANK_INLIERS
    if VERIFIED_OVER_CHECKED is None or not verified.any():
        return ranked
    capped = ranked.copy()
    for i in np.flatnonzero((inliers >= 0) & ~verified):
        over = verified & (inliers >= VERIFIED_OVER_CHECKED * max(int(inliers[i]), 1))
        if over.any():
            capped[i] = min(ranked[i], ranked[over].min() - 1e-6)
    return capped
