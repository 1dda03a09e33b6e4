"""The retrieval metrics bench/quality.py and test_quality.py report, on rankings small enough to
work out by hand."""

import numpy as np
import pytest

from search_by_image.evaluation.measures import (
    GroundTruth,
    average_precision,
    mean_average_precision,
    ns_score,
    precision_at,
)


def test_average_precision_by_hand():
    assert average_precision(np.array([True, False, True]), 2) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert average_precision(np.array([False, True]), 1) == 0.5
    assert average_precision(np.array([True, False]), 2) == 0.5  # a relevant image never ranked
    assert average_precision(np.array([False, False]), 0) == 0.0


def truth_and_features():
    """Four images in two groups (a, b); the first of each is a query. Image 1 (group a) lies
    closer to query 2 (group b) than image 3 does."""
    truth = GroundTruth(files=["a0", "a1", "b0", "b1"], groups=["a", "a", "b", "b"], queries=[0, 2])
    features = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]], np.float32)
    return truth, features


def test_map_and_precision_leave_each_query_out_of_its_own_ranking():
    truth, features = truth_and_features()
    # query 0 ranks 1 (a), 2, 3: AP 1; query 2 ranks 1 (a) then 3 (b): AP 1/2
    assert mean_average_precision(features, truth) == pytest.approx(0.75)
    assert precision_at(features, truth, 1) == pytest.approx(0.5)


def test_ukbench_score_counts_relevant_images_in_the_top_four_query_included():
    truth, features = truth_and_features()
    assert ns_score(features, truth) == 2.0  # each query's top 4 is all four images: 2 relevant


def test_ground_truth_is_read_sorted_by_file_name(tmp_path):
    (tmp_path / "groundtruth.csv").write_text("filename,group,is_query\nb.jpg,2,1\na.jpg,1,0\nc.jpg,2,0\n")
    truth = GroundTruth.read(tmp_path)
    assert truth.files == ["a.jpg", "b.jpg", "c.jpg"] and truth.groups == ["1", "2", "2"]
    assert truth.queries == [1]
