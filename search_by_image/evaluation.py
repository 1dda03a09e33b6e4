"""Retrieval metrics on ground-truth sets laid out as in ../shared/datasets (groundtruth.csv).

Shared by the quality test and bench/quality.py so both report the same number.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def mean_average_precision(features: np.ndarray, truth: GroundTruth) -> float:
    """mAP over the designated queries, each query excluded from its own ranking."""
    groups = np.asarray(truth.groups)
    scores = features[truth.queries] @ features.T
    aps = []
    for row, query in enumerate(truth.queries):
        order = np.argsort(-scores[row], kind="stable")
        order = order[order != query]
        relevant = groups[order] == groups[query]
        aps.append(average_precision(relevant, int(relevant.sum())))
    return float(np.mean(aps))


def precision_at(features: np.ndarray, truth: GroundTruth, k: int) -> float:
    """Mean fraction of relevant images among each query's top k (query excluded)."""
    groups = np.asarray(truth.groups)
    scores = features[truth.queries] @ features.T
    values = []
    for row, query in enumerate(truth.queries):
        order = np.argsort(-scores[row], kind="stable")
        order = order[order != query][:k]
        values.append(float((groups[order] == groups[query]).mean()))
    return float(np.mean(values))


def ns_score(features: np.ndarray, truth: GroundTruth) -> float:
    """UKBench's Nistér-Stewénius score: relevant images in each query's top 4, query included."""
    groups = np.asarray(truth.groups)
    scores = features[truth.queries] @ features.T
    top4 = np.argsort(-scores, axis=1, kind="stable")[:, :4]
    return float((groups[top4] == groups[truth.queries][:, None]).sum(axis=1).mean())
