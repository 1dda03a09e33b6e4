"""Retrieval metrics on ground-truth sets laid out as in ../shared/datasets (groundtruth.csv).

Shared by the quality test and bench/quality.py so both report the same number.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search_by_image.index.whitening import Whitening


@dataclass(frozen=True)
class GroundTruth:
    files: list[str]
    groups: list[str]
    queries: list[int]

    @classmethod
    def read(cls, dataset_dir: Path) -> GroundTruth:
        with open(dataset_dir / "groundtruth.csv", newline="") as handle:
            rows = sorted(csv.DictReader(handle), key=lambda r: r["filename"])
        return cls(
            files=[r["filename"] for r in rows],
            groups=[r["group"] for r in rows],
            queries=[i for i, r in enumerate(rows) if r["is_query"] == "1"],
        )


def average_precision(ranked_relevance: np.ndarray, n_relevant: int) -> float:
    """Non-interpolated AP of one ranking (the Holidays README: within a hair of the official)."""
    if n_relevant == 0:
        return 0.0
    hits = np.cumsum(ranked_relevance)
    ranks = np.flatnonzero(ranked_relevance) + 1
    return float((hits[ranks - 1] / ranks).sum() / n_relevant)


def _query_relevance(features: np.ndarray, truth: GroundTruth, queries: list[int]) -> list[np.ndarray]:
    """Per query: relevance of every other image, in ranked order (the query itself excluded)."""
    groups = np.asarray(truth.groups)
    scores = features[queries] @ features.T
    ranked = []
    for row, query in enumerate(queries):
        order = np.argsort(-scores[row], kind="stable")
        order = order[order != query]
        ranked.append(groups[order] == groups[query])
    return ranked


def mean_average_precision(features: np.ndarray, truth: GroundTruth) -> float:
    """mAP over the designated queries, each query excluded from its own ranking."""
    ranked = _query_relevance(features, truth, truth.queries)
    return float(np.mean([average_precision(r, int(r.sum())) for r in ranked]))


def cross_fitted_whitening(features: np.ndarray, truth: GroundTruth, dims: int) -> tuple[float, float]:
    """mAP and P@1 with whitening learned only on images of the *other* half of the groups.

    Two folds by group: whitening learned on one fold's images ranks the whole set for the other
    fold's queries, so no query, nor any image relevant to it, is ever learned from.
    """
    fold = np.array([int(g) % 2 if g.isdigit() else sum(map(ord, g)) % 2 for g in truth.groups])
    ranked = []
    for held_out in (0, 1):
        whitened = Whitening.learn(features[fold != held_out], dims)(features)
        queries = [q for q in truth.queries if fold[q] == held_out]
        ranked += _query_relevance(whitened, truth, queries)
    return (
        float(np.mean([average_precision(r, int(r.sum())) for r in ranked])),
        float(np.mean([r[0] for r in ranked])),
    )


def precision_at(features: np.ndarray, truth: GroundTruth, k: int) -> float:
    """Mean fraction of relevant images among each query's top k (query excluded)."""
    return float(np.mean([r[:k].mean() for r in _query_relevance(features, truth, truth.queries)]))


def ns_score(features: np.ndarray, truth: GroundTruth) -> float:
    """UKBench's Nistér-Stewénius score: relevant images in each query's top 4, query included."""
    groups = np.asarray(truth.groups)
    scores = features[truth.queries] @ features.T
    top4 = np.argsort(-scores, axis=1, kind="stable")[:, :4]
    return float((groups[top4] == groups[truth.queries][:, None]).sum(axis=1).mean())


# --- The product's path: a collection indexed as `with_faiss.py` does, queried as POST /search ---
