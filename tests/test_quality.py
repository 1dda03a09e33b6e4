"""Retrieval quality of the default descriptor on real ground-truth sets from ../shared/datasets.

Floors sit well under the measured values (printed with -s), so they catch a broken pipeline
(wrong normalisation, misaligned rows, random weights: mAP ~0.05), not noise.
"""

import numpy as np
import pytest

from conftest import require_datasets
from search_by_image.evaluation import (
    GroundTruth,
    cross_fitted_whitening,
    mean_average_precision,
    ns_score,
    precision_at,
)
from search_by_image.local_engine import embed_files
from search_by_image.whitening import DEFAULT_DIMS


def embed_dataset(embedder, name: str):
    dataset = require_datasets(name)
    truth = GroundTruth.read(dataset)
    paths, features, skipped = embed_files(
        embedder, dataset / "images", truth.files, batch_size=16, workers=2,
        max_pixels=50_000_000, progress=False,
    )
    assert paths == truth.files and not skipped
    return features, truth


@pytest.fixture(scope="module")
def holidays(lite0):
    return embed_dataset(lite0, "holidays_subset300")


def test_holidays_same_scene_images_rank_first(lite0, holidays):
    features, truth = holidays
    score, p1 = mean_average_precision(features, truth), precision_at(features, truth, 1)
    print(f"\nholidays_subset300 ({lite0.spec.model}, {lite0.runtime} {lite0.precision}): "
          f"mAP={score:.4f} P@1={p1:.4f}")
    assert score > 0.70
    assert p1 > 0.75


def test_whitening_learned_on_other_images_improves_holidays(holidays):
    """The default whitening, learned on disjoint groups, must beat the raw descriptor."""
    features, truth = holidays
    plain = mean_average_precision(features, truth)
    whitened, p1 = cross_fitted_whitening(features, truth, dims=DEFAULT_DIMS)
    print(f"\nholidays_subset300 + PCA-whitening {DEFAULT_DIMS} (cross-fitted): mAP={whitened:.4f} P@1={p1:.4f}")
    assert whitened > plain + 0.01


def test_ukbench_views_of_an_object_fill_the_top_four(lite0):
    features, truth = embed_dataset(lite0, "ukbench_subset14")
    score = ns_score(features, truth)
    print(f"\nukbench_subset14 N-S score (of 4, query included): {score:.3f}")
    assert score > 3.3


def test_ns_score_of_a_perfect_ranking_is_four():
    truth = GroundTruth(files=[str(i) for i in range(8)], groups=["a"] * 4 + ["b"] * 4,
                        queries=list(range(8)))
    features = np.repeat(np.eye(2, dtype=np.float32), 4, axis=0)
    assert ns_score(features, truth) == pytest.approx(4.0)
    assert mean_average_precision(features, truth) == pytest.approx(1.0)
