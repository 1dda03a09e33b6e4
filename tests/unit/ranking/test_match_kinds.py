"""Score labels: copy / similar / weak, by the index's own scale."""

import numpy as np
import pytest

from search_by_image.index.whitening import SHRINKAGE, SMALL_SHRINKAGE, Whitening
from search_by_image.ranking.match_kinds import RAW, WHITENED, WHITENED_SMALL, thresholds_for


def whitening(shrinkage: float) -> Whitening:
    return Whitening(np.zeros(4, np.float32), np.eye(4, dtype=np.float32), shrinkage=shrinkage)


def test_labels_follow_the_thresholds_of_the_index_scale():
    assert thresholds_for(whitening(SHRINKAGE)) is WHITENED and thresholds_for(None) is RAW
    assert thresholds_for(whitening(SMALL_SHRINKAGE)) is WHITENED_SMALL
    assert [WHITENED_SMALL.kind(s) for s in (0.9, 0.6, 0.59, 0.3, 0.1)] == [
        "copy",
        "copy",
        "similar",
        "similar",
        "weak",
    ]
    assert [RAW.kind(s) for s in (0.9, 0.8, 0.5)] == ["copy", "similar", "weak"]
    copy, similar = WHITENED.copy, WHITENED.similar
    assert [WHITENED.kind(s) for s in (copy, copy - 0.01, similar, similar - 0.01)] == [
        "copy",
        "similar",
        "similar",
        "weak",
    ]


@pytest.mark.parametrize("thresholds", [WHITENED, WHITENED_SMALL, RAW])
def test_a_copy_scores_above_similar(thresholds):
    assert 0 < thresholds.similar < thresholds.copy < 1
