"""How strong a match is, in words: `copy`, `similar` or `weak`.

A score alone does not tell a client whether the top result is a good match: cosine scales differ
between whitened indexes (collections of 400+ images) and raw ones. The thresholds below come from
`python -m bench.quality`'s sets on holidays_subset300 through the product (EfficientNet-Lite0 int8,
448 px GeM; whitened: 384-d, shrinkage 1, learned on the collection), bench/README.md "Score
meaning":
- whitened `copy` >= 0.6: 93.8% of the altered copies (900, seeds 1-3: crops, rotations, colour,
  rescale, JPEG, mirror, border, caption, combinations) score at least that with their source;
  so do 18% of the pairs of *different shots* of one Holidays scene (global descriptors cannot
  tell a re-shot from an edited copy), and 4 of 328,000 pairs of different scenes. At 0.5 the
  copies would reach 97.6% but same-scene pairs 27%, and 49% of the Holidays photos (instead of
  36%) would sit in a duplicate group, whose default threshold this is.
- whitened `similar` >= 0.3: 52% of same-scene pairs, 89 of 328,000 different-scene pairs; the
  best unrelated result of a Holidays query is above 0.3 for about 1 query in 8.
- raw `copy` >= 0.85 (89% of the copies, 23% of same-scene pairs, 10 different-scene pairs);
  raw `similar` >= 0.75 (59% of same-scene pairs, 488 different-scene pairs).
Anything under `similar` is `weak`: likely no good match in the collection.

Where the top results are checked with local features (setting `verify_top`, verification.py),
those results are labelled by the check instead: `copy` only for a verified copy (keypoints one
transform explains, aligned pixels that agree and do not move, and no capture times minutes apart:
capture_time.py), `similar` for a geometric match or a score
over `similar`. Results past the checked ones keep the score's label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from search_by_image.index.whitening import Whitening

MatchKind = Literal["copy", "similar", "weak"]


@dataclass(frozen=True)
class Thresholds:
    copy: float
    similar: float

    def kind(self, score: float) -> MatchKind:
        return "copy" if score >= self.copy else "similar" if score >= self.similar else "weak"

    def checked_kind(self, score: float, copy: bool, verified: bool) -> MatchKind:
        """The kind of a result checked with local features (verification.py): `copy` only
        when they say so, whatever the score; `similar` when the score or the geometry says."""
        return "copy" if copy else "similar" if verified or score >= self.similar else "weak"


#: The default whitening (512-d, shrinkage 2).
WHITENED = Thresholds(copy=0.6, similar=0.3)
#: A whitening shrunk by 1 (384-d: collections of 400-511 images, folders saved before).
WHITENED_SMALL = Thresholds(copy=0.6, similar=0.3)
RAW = Thresholds(copy=0.85, similar=0.75)


def thresholds_for(whitening: Whitening | None) -> Thresholds:
    """The thresholds of an index searched with this whitening (None: raw descriptors)."""
    if whitening is None:
        return RAW
    return WHITENED_SMALL if whitening.small else WHITENED
