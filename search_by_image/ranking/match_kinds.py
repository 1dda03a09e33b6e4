"""How strong a match is, in words: `copy`, `similar` or `weak`.

A score alone does not tell a client whether the top result is a good match: cosine scales differ
between whitened indexes (collections of 400+ images) and raw ones, and between whitenings (the
more the eigenvalues are shrunk, the closer to raw). The thresholds below come from
`python -m bench.score_meaning` on holidays_subset300 through the product (EfficientNet-Lite0,
448 px GeM, whitening learned on the collection), bench/README.md "Score meaning": 900 altered
copies (seeds 1-3: crops, rotations, colour, rescale, JPEG, mirror, border, caption,
combinations) against their source, the 903 pairs of *different shots* of one Holidays scene
(global descriptors cannot tell a re-shot from an edited copy), 328,000 pairs of different scenes.
- 384-d shrunk by 1 (`WHITENED_SMALL`): `copy` >= 0.6: 93.8% of the copies score at least that
  with their source, so do 18% of the same-scene pairs and 4 different-scene pairs; 36% of the
  photos have another that high (a duplicate group at the default threshold, which this is). At
  0.5 the copies would reach 97.6% but same-scene pairs 27% and photos 49%. `similar` >= 0.3: 52%
  of same-scene pairs, 89 different-scene pairs; the best unrelated result of a Holidays query is
  above 0.3 for about 1 query in 8.
- 512-d shrunk by 2 (`WHITENED`, the default) scores the same pairs a little lower: `copy` >=
  0.55 passes 95.6% of the copies, 19% of same-scene pairs, 37% of photos, 4 different-scene
  pairs (0.6 would pass 93%, 16%, 31%); `similar` >= 0.3: 53% of same-scene pairs, 114
  different-scene pairs. The thresholds passing the same shares as 384-d's: copy 0.54-0.59,
  similar 0.30-0.31.
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
WHITENED = Thresholds(copy=0.55, similar=0.3)
#: A whitening shrunk by 1 (384-d: collections of 400-511 images, folders saved before).
WHITENED_SMALL = Thresholds(copy=0.6, similar=0.3)
RAW = Thresholds(copy=0.85, similar=0.75)
#: The duplicates' default threshold, as the page's API and the indexer's --threshold describe it.
COPY_DEFAULTS = f"default: {RAW.copy} raw, {WHITENED.copy} whitened, {WHITENED_SMALL.copy} 384-d whitened"


def thresholds_for(whitening: Whitening | None) -> Thresholds:
    """The thresholds of an index searched with this whitening (None: raw descriptors)."""
    if whitening is None:
        return RAW
    return WHITENED_SMALL if whitening.small else WHITENED
