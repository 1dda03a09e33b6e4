"""Spatially verified query expansion: the results local verification found to show the query's
scene lend their descriptors to the query, and the other results are ranked again by it.

A single photo's descriptor misses the shots of its scene taken from elsewhere, in other light,
with other people in front; the photos already verified as that scene (verification.py: one
transform explains >= RERANK_INLIERS of their keypoints) show it from their own viewpoints.
Adding their descriptors to the query's ("Total Recall", Chum et al. 2007; alpha-QE, Radenovic
et al. 2018) reaches the scene's other shots. Only verified results expand the query: blind
expansion with the top results whatever they show gained less and drifts when they are wrong
(bench/README.md "Levers measured and not shipped").

- Each verified result weighs min(inliers, BONUS_CAP) / BONUS_CAP beside the query's own
  weight (`query_weight`: 1.5 on the default whitening, 1 on raw descriptors and 384-d): a copy
  or a close shot counts fully, a barely verified one little.
- Verified results keep their places (VERIFIED_PLACES), so a copy's source stays above the
  other shots of its scene that the expanded query favours; the others are ranked again by the
  expanded query's score, among the places they held. Scores shown
  stay the query's own, so match kinds keep their calibration.
- Only the first DEPTH fetched results are ranked again, from the descriptors the index store
  keeps (whitened here): no second search, no more keypoints matched; pages past DEPTH keep their
  order, and every page up to it comes from the same candidates.

- Results it lifts into the checked top from beyond the checked ones are then checked, a few,
  and it ranks again with them (serving/snapshot.py, `Verifier.check_late`).

- With the query's quarter turns (rotations.py) each view is expanded and scored, the turned
  ones less rotations.PENALTY, so the expansion keeps what the turns found.

Gain and cost on holidays_subset300 through the product: bench/README.md "Local verification".
"""

from __future__ import annotations

import numpy as np

from search_by_image.index.live_store import LiveStore
from search_by_image.index.whitening import Whitening
from search_by_image.ranking import rotations, verification
from search_by_image.ranking.verification import BONUS_CAP, Check, reorder_checks

#: Results ranked again (and fetched at least): the API's largest page.
DEPTH = 100
#: Whether verified results stay above the unverified ones whatever their expanded scores: off,
#: since with repetitive patterns (tiles, grids) other images verify too and then lead a detail's
#: source (bench/README.md "Copies as they reach people").
VERIFIED_FIRST = False
#: Whether verified results keep their places among the results (expansion ranks the unverified
#: ones again among the places they held): the expanded query favours the other shots of the
#: query's scene, and lifted one checked with 0-5 inliers over a copy's verified source, not a
#: copy by its pixels (bench/README.md "Order of results").
VERIFIED_PLACES = True
#: The query's own weight beside its verified results' (each at most 1) on the default whitening
#: (512-d, shrinkage 2): 1.5 keeps more of what the query itself shows (bench/README.md "Whitening
#: on the product path").
QUERY_WEIGHT = 1.5
#: ... on raw descriptors and a whitening shrunk by 1 (384-d), as they were measured and served.
SMALL_QUERY_WEIGHT = 1.0


def query_weight(whitening: Whitening | None) -> float:
    return SMALL_QUERY_WEIGHT if whitening is None or whitening.small else QUERY_WEIGHT


def expanded(
    query: np.ndarray, members: np.ndarray, weights: np.ndarray, query_weight: float = 1.0
) -> np.ndarray:
    """The unit sum of a (whitened, unit) query, weighing `query_weight`, and its members'
    descriptors, weighted."""
    total = query_weight * np.asarray(query, np.float64) + np.asarray(weights, np.float64) @ np.asarray(
        members, np.float64
    )
    return (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32)


def rerank(
    store: LiveStore, query: np.ndarray, hits: list[tuple[int, float]], checks: list[Check | None]
) -> tuple[list[tuple[int, float]], list[Check | None]]:
    """`hits` (checked and re-ranked by verification) ranked again with the query `query` (a
    descriptor as the embedder gives it, or one row per view: upright, then turned, each
    expanded and scored as rotations.merged does) expanded by its verified results; unchanged
    when none is verified."""
    top = min(DEPTH, len(hits))
    inliers = np.array([-1 if check is None else check.inliers for check in checks[:top]])
    verified = np.array([check is not None and check.verified for check in checks[:top]], dtype=bool)
    if not verified.any():
        return hits, checks
    vectors = store.searchable_vectors(image_id for image_id, _ in hits[:top])
    weights = np.minimum(inliers[verified], BONUS_CAP) / BONUS_CAP
    views = store.searchable(np.atleast_2d(query))
    own_weight = query_weight(store.whitening)
    scores = np.max(
        [
            vectors @ expanded(view, vectors[verified], weights, own_weight) - rotations.penalty(n)
            for n, view in enumerate(views)
        ],
        axis=0,
    )
    own = np.array([score for _, score in hits[:top]])
    order = reorder_checks(np.where(verified, own, scores), checks[:top], VERIFIED_FIRST)
    if VERIFIED_PLACES and not VERIFIED_FIRST:
        order = _in_places(order, verified, [_leads(check) for check in checks[:top]])
    return [hits[i] for i in order] + hits[top:], [checks[i] for i in order] + checks[top:]


def _leads(check: Check | None) -> bool:
    """Whether `reorder` puts a result above every other kind: a copy, or an aligned one."""
    return check is not None and (check.copy or (verification.ALIGNED_FIRST and check.aligned))


def _in_places(order: np.ndarray, verified: np.ndarray, leads: list[bool]) -> np.ndarray:
    """`order` with the results that lead (`_leads`: a copy verified late too) first, then the
    other verified results in the places verified results held among the rest (indices), and
    the unverified ones in the others, each in `order`'s order."""
    first = [i for i in order if leads[i]]
    rest = [i for i in range(len(verified)) if not leads[i]]
    queues = {
        kind: iter([i for i in order if not leads[i] and verified[i] == kind]) for kind in (True, False)
    }
    return np.array(first + [next(queues[bool(verified[i])]) for i in rest], np.int64)
