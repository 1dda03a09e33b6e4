"""Score labels: copy / similar / weak, by the index's own scale."""

from search_by_image.ranking.match_kinds import RAW, WHITENED, thresholds_for


def test_labels_follow_the_thresholds_of_the_index_scale():
    assert thresholds_for(True) is WHITENED and thresholds_for(False) is RAW
    assert [WHITENED.kind(s) for s in (0.9, 0.6, 0.59, 0.3, 0.1)] == [
        "copy",
        "copy",
        "similar",
        "similar",
        "weak",
    ]
    assert [RAW.kind(s) for s in (0.9, 0.8, 0.5)] == ["copy", "similar", "weak"]
