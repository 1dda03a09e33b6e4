"""PCA-whitening of descriptors, learned on a collection, stored with its index.

Whitening (Jégou & Chum, "Negative evidences and co-occurrences in image retrieval", ECCV 2012)
centres the descriptors, rotates them onto their principal axes and divides each axis by its
spread, so bursty dimensions shared by many images stop dominating the cosine.

Learned on the collection it then serves (what the indexer does), plain whitening overfits: the
spreads of the last axes are estimated from few images and dividing by them blows noise up. On
holidays_subset300 through the product (`python -m bench.quality`) 384-d plain whitening served
mAP 0.788, *under* the raw descriptors' 0.802. So the eigenvalues are shrunk towards their mean
(a Ledoit-Wolf-style ridge: each axis divided by sqrt(eigenvalue + SHRINKAGE x mean eigenvalue)):
strong axes are still whitened, weak ones left near their natural scale. Same 384 dimensions:
0.832 through the product, and altered copies find their source as often as before (bench/README.md,
"Whitening on the product path"). With verification and query expansion on top, 512 dimensions
shrunk by 2 serve 0.87 where 384 shrunk by 1 serve 0.864 (fp32 descriptors).

The shrinkage is saved with the whitening: the scores' scale depends on it, and the thresholds that
name a score (ranking/match_kinds.py) and expansion's query weight are chosen by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Output dimensions: 2 KB per image. Scores alone are flat from 256 to 1280 dimensions; with
#: verification and query expansion 512-d shrunk by 2 is what reaches Holidays mAP 0.87 on fp32
#: descriptors (bench/README.md "Whitening on the product path").
DEFAULT_DIMS = 512
#: Added to every eigenvalue, in units of their mean. Product-path mAP on holidays_subset300
#: rises with shrinkage up to a plateau from 1 to 8 (bench/README.md, whitening table).
SHRINKAGE = 2.0
#: The whitening of a collection with fewer images than the dimensions asked for (a 512 x 512
#: covariance needs more than 511 rows), and of folders saved before the shrinkage was recorded:
#: 384-d, shrunk by 1 (1.5 KB per image).
SMALL_DIMS = 384
SMALL_SHRINKAGE = 1.0
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
    #: what was added to the eigenvalues, in units of their mean (the scores' scale follows)
    shrinkage: float = SMALL_SHRINKAGE

    @property
    def dims(self) -> int:
        return self.projection.shape[1]

    @property
    def small(self) -> bool:
        """Shrunk no more than the SMALL fallback (and every folder saved before the shrinkage was
        recorded): its scores are named and expanded as that whitening's were measured."""
        return self.shrinkage <= SMALL_SHRINKAGE

    @classmethod
    def learn(
        cls, features: np.ndarray, dims: int = DEFAULT_DIMS, seed: int = 0, shrinkage: float | None = None
    ) -> Whitening:
        shrinkage = SHRINKAGE if shrinkage is None else shrinkage
        if len(features) > MAX_SAMPLE:  # sample before converting: 1M x 2048 as float64 is 16 GB
            rows = np.sort(np.random.default_rng(seed).choice(len(features), MAX_SAMPLE, replace=False))
            features = features[rows]
        features = np.asarray(features, dtype=np.float64)
        mean = features.mean(axis=0)
        _, singular, vt = np.linalg.svd(features - mean, full_matrices=False)
        dims = min(dims, len(singular))
        eigen = singular**2 / len(features)
        projection = vt[:dims].T / np.sqrt(eigen[:dims] + shrinkage * eigen.mean())
        return cls(mean.astype(np.float32), projection.astype(np.float32), float(shrinkage))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Whitened unit rows, computed in blocks: centring a million 2048-d rows at once would
        need a second 8 GB array next to the first."""
        out = np.empty((len(features), self.dims), dtype=np.float32)
        for start in range(0, len(features), BLOCK_ROWS):
            block = (
                np.asarray(features[start : start + BLOCK_ROWS], dtype=np.float32) - self.mean
            ) @ self.projection
            out[start : start + BLOCK_ROWS] = block / np.maximum(
                np.linalg.norm(block, axis=1, keepdims=True), 1e-12
            )
        return out

    def save(self, path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, mean=self.mean, projection=self.projection, shrinkage=np.float64(self.shrinkage))

    @classmethod
    def load(cls, path: Path) -> Whitening:
        """The saved whitening; files without a shrinkage were all learned with SMALL_SHRINKAGE."""
        with np.load(path) as data:
            shrinkage = float(data["shrinkage"]) if "shrinkage" in data.files else SMALL_SHRINKAGE
            return cls(data["mean"], data["projection"], shrinkage)


def learn_if_enough(features: np.ndarray, dims: int, min_images: int = MIN_IMAGES) -> Whitening | None:
    """Whitening for a collection of this size, or None when it is off or too few images: `dims`
    shrunk by SHRINKAGE, or SMALL_DIMS shrunk by SMALL_SHRINKAGE when there are fewer images than
    `dims`."""
    if dims <= 0 or len(features) < min_images:
        return None
    if len(features) < dims:
        if len(features) < SMALL_DIMS:
            return None
        return Whitening.learn(features, SMALL_DIMS, shrinkage=SMALL_SHRINKAGE)
    return Whitening.learn(features, dims)
