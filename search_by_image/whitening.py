"""PCA-whitening of descriptors, learned on a collection, stored with its index.

Whitening (Jégou & Chum, "Negative evidences and co-occurrences in image retrieval", ECCV 2012)
centres the descriptors, rotates them onto their principal axes and divides each axis by its
spread, so bursty dimensions shared by many images stop dominating the cosine. On
holidays_subset300 it raised EfficientNet-Lite0's mAP from 0.802 to 0.846 when learned on the
other half of the groups (about 400 images; cross-fitted: no query's own group in the learning set).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Output dimensions. Cross-fitted mAP on holidays_subset300 rose with them while they stayed
#: under the number of learning images: 128 -> 0.810, 256 -> 0.834, 320 -> 0.841, 352 -> 0.850,
#: 384 -> 0.842; at 400 of ~400 images it collapsed to 0.48 (axes of pure noise, blown up).
DEFAULT_DIMS = 384
#: So a collection keeps at most this share of its image count as dimensions: with ~400 learning
#: images, shares 0.75-0.9 gave 0.837-0.846 (0.85: 0.846); beyond the share, noise.
MAX_DIMS_PER_IMAGE = 0.85
#: Fewest images to learn from: each half of holidays_subset300 (about 400 images) was enough for
#: the gain above; far fewer leaves most axes as noise.
MIN_IMAGES = 400
#: Learning on a sample keeps indexing a million images from an N x D SVD; 50k rows pin down the
#: covariance of 1280-2048-d descriptors many times over.
MAX_SAMPLE = 50_000
#: Rows whitened at a time (65k x 2048 float32 = 0.5 GB of temporaries).
BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class Whitening:
    mean: np.ndarray
    projection: np.ndarray  # D x dims

    @property
    def dims(self) -> int:
        return self.projection.shape[1]

    @classmethod
    def learn(cls, features: np.ndarray, dims: int = DEFAULT_DIMS, seed: int = 0) -> Whitening:
        if len(features) > MAX_SAMPLE:  # sample before converting: 1M x 2048 as float64 is 16 GB
            rows = np.sort(np.random.default_rng(seed).choice(len(features), MAX_SAMPLE, replace=False))
            features = features[rows]
        features = np.asarray(features, dtype=np.float64)
        mean = features.mean(axis=0)
        _, singular, vt = np.linalg.svd(features - mean, full_matrices=False)
        dims = min(dims, len(singular), max(1, int(MAX_DIMS_PER_IMAGE * len(features))))
        eigen = singular[:dims] ** 2 / len(features)
        # A small floor keeps near-zero axes from being blown up into noise.
        projection = vt[:dims].T / np.sqrt(eigen + 1e-6 * eigen[0])
        return cls(mean.astype(np.float32), projection.astype(np.float32))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Whitened unit rows, computed in blocks: centring a million 2048-d rows at once would
        need a second 8 GB array next to the first."""
        out = np.empty((len(features), self.dims), dtype=np.float32)
        for start in range(0, len(features), BLOCK_ROWS):
            block = (np.asarray(features[start:start + BLOCK_ROWS], dtype=np.float32) - self.mean) @ self.projection
            out[start:start + BLOCK_ROWS] = block / np.maximum(
                np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        return out

    def save(self, path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, mean=self.mean, projection=self.projection)

    @classmethod
    def load(cls, path: Path) -> Whitening:
        with np.load(path) as data:
            return cls(data["mean"], data["projection"])


def learn_if_enough(features: np.ndarray, dims: int, min_images: int = MIN_IMAGES) -> Whitening | None:
    """Whitening for a collection of this size, or None when it is off or too few images."""
    if dims <= 0 or len(features) < max(min_images, dims):
        return None
    return Whitening.learn(features, dims)
