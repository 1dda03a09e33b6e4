"""Local features and geometric verification: how many keypoints of two images one transform
explains (numpy in, numpy out).

A global descriptor scores an edited copy and another shot of the same scene alike; the classic
way to tell them apart, and to rescue crops and rotations a global descriptor ranks low, is to
match local keypoints and count those a single geometric transform maps onto each other (RANSAC).

- `extract`: ORB keypoints (OpenCV, FAST corners with binary rBRIEF descriptors) of an image
  scaled to `SIDE` px on its longest side, from the thumbnails the indexer already keeps, so the
  indexed side needs no storage of its own: its features are computed from the thumbnail when
  verified. ORB over SIFT: on holidays_subset300 both separate copies from re-shots alike,
  and ORB extracts and matches several times faster (bench/README.md "Local verification").
- `inliers`: nearest-neighbour matches passing Lowe's ratio test, then the number of them a
  similarity transform (rotation, uniform scale, translation; `cv2.estimateAffinePartial2D`,
  RANSAC) explains. Copies are crops, rotations, rescales and recolourings of one frame: a
  similarity maps them; another shot of a scene moves the camera, and only a fraction of its
  matches fit one. Mirrored copies are matched through the query's mirror image (`mirrored`).
- Once aligned (alignment.py): do the two images' pixels agree, and does anything still move.

OpenCV is imported on first use: it adds ~0.4 s and ~35 MB to a process that never verifies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from search_by_image.devices import one_faiss_thread

#: Longest side the features are computed at (thumbnails, 448 px, are scaled down to it): the
#: size every threshold below, in pixels, was measured at.
SIDE = 384
#: Keypoints per image: more lift recall on textured scenes, and cost matching time.
KEYPOINTS = 500
#: FAST corner thresholds, tried in turn until a quarter of KEYPOINTS is found: the second finds
#: corners in low-contrast photos (fog, snow, a calm sea) where the first finds a handful.
FAST_THRESHOLDS = (10, 3)
#: ORB finds no keypoint within this many pixels of the border (its default edgeThreshold, and
#: patchSize): an image this narrow or less has none, and OpenCV's pyramid fails on it.
ORB_BORDER = 31
#: Lowe's ratio test: a match counts when its best distance is under this share of the second.
RATIO = 0.8
#: RANSAC: a match fits when the transform maps it within this many pixels (at SIDE px).
REPROJECTION_PX = 6.0
#: Fewer matches than this cannot support a transform; verification reports 0 inliers.
MIN_MATCHES = 6
#: Pairs whose nearest neighbours each thread keeps (`recent_nearest_two`).
RECENT_PAIRS = 4
#: each thread's recent pairs
_recent = threading.local()


@dataclass(frozen=True)
class Keypoints:
    #: n x 2 float32 positions, in pixels of the image scaled to SIDE px
    xy: np.ndarray
    #: n x 32 uint8 ORB descriptors
    descriptors: np.ndarray
    #: the greyscale image they were found on (SIDE px), for comparing pixels once aligned; or
    #: what reads it again (`without_grey`: a cache keeps ~20 KB an image, not ~120 KB)
    pixels: np.ndarray | Callable[[], np.ndarray]
    #: what reads the same image's keypoints from a larger view of it (stored at indexing time,
    #: stored_keypoints.py: read only where a search tries them), in the same frame; None: none
    finer: Callable[[], Keypoints | None] | None = None
    #: what reads a larger grey of the same image, and its scale from this frame (x, y), to
    #: compare pixels at once aligned (a detail of a big photo shows too few of a thumbnail's)
    view: Callable[[], tuple[np.ndarray, tuple[float, float]]] | None = None

    def __len__(self) -> int:
        return len(self.xy)

    @property
    def grey(self) -> np.ndarray:
        if not isinstance(self.pixels, np.ndarray):
            raise ValueError("these keypoints keep no pixels: take with_grey() first")
        return self.pixels

    def without_grey(self, read: Callable[[], np.ndarray]) -> Keypoints:
        """The same keypoints, their grey image left to `read` (what `extract` made it from)."""
        return replace(self, pixels=read)

    def with_grey(self) -> Keypoints:
        """The same keypoints with their grey image in memory, read again if it was not kept
        (whatever the reader raises if it can no longer be)."""
        return self if isinstance(self.pixels, np.ndarray) else replace(self, pixels=self.pixels())


def _empty(grey: np.ndarray) -> Keypoints:
    return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), grey)


def opencv():
    import cv2

    cv2.setNumThreads(1)  # per request; the service's threads are the parallelism
    return cv2


def scaled_grey(rgb: np.ndarray, side: int | None = None) -> np.ndarray:
    """An H x W x 3 uint8 image (or an H x W grey one) as greyscale with its longest side at
    most `side` (SIDE) px."""
    cv2 = opencv()
    rgb = np.ascontiguousarray(rgb)
    grey = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = (side or SIDE) / max(grey.shape)
    if scale < 1:
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def extract(rgb: np.ndarray, side: int | None = None, count: int | None = None) -> Keypoints:
    """ORB keypoints of an RGB image (H x W x 3 uint8, or H x W grey; any size: scaled to `side`
    (SIDE) px first), at most `count` (KEYPOINTS) of them."""
    cv2 = opencv()
    grey = scaled_grey(rgb, side)
    count = count or KEYPOINTS
    if min(grey.shape) <= 2 * ORB_BORDER:  # a strip or a speck: nothing to match
        return _empty(grey)
    # local contrast equalised: corners in flat photos, and recoloured copies look alike
    equalised = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
    for threshold in FAST_THRESHOLDS:
        orb = cv2.ORB_create(nfeatures=count, fastThreshold=threshold)
        points, descriptors = orb.detectAndCompute(equalised, None)
        if len(points) >= count // 4:
            break
    if descriptors is None or not points:
        return _empty(grey)
    return Keypoints(np.array([p.pt for p in points], np.float32), descriptors, grey)


def mirrored(rgb: np.ndarray) -> np.ndarray:
    """The image's mirror (left-right), for matching mirrored copies."""
    return np.ascontiguousarray(rgb[:, ::-1])


@dataclass(frozen=True)
class Verified:
    #: matches one similarity transform explains
    inliers: int
    #: 2 x 3 transform from the query's pixels to the candidate's (None: none found)
    transform: np.ndarray | None
    #: the inliers' positions in the candidate (n x 2)
    points: np.ndarray | None = None

    def spans(self, px: float) -> bool:
        """Whether the inliers spread at least `px` both ways (True when their places are unknown)."""
        if self.points is None or not len(self.points):
            return True
        return bool((np.ptp(self.points, axis=0) >= px).all())


NONE = Verified(0, None)


def nearest_two(descriptors: np.ndarray, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances (n x 2) and rows in `among` (n x 2) of each descriptor's two nearest.

    FAISS's binary flat index, not OpenCV's BFMatcher: the same two distances, 5x faster on 500 x
    500 ORB descriptors (bench/README.md "Local verification"), and only the order among equal
    distances may differ, which the ratio test rejects either way (the best must be strictly
    nearer than the second). Run on this thread alone (FAISS's OpenMP threads for 500 queries
    cost more than the search under load; the setting is per thread and restored)."""
    import faiss

    index = faiss.IndexBinaryFlat(8 * descriptors.shape[1])
    index.add(among)
    with one_faiss_thread():
        return index.search(descriptors, 2)


def recent_nearest_two(descriptors: np.ndarray, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`nearest_two`, the last RECENT_PAIRS pairs of arrays' answers kept on each thread: a check
    matches one pair at two ratios (verification.FINER_RATIO), and the search, not the ratio
    test or RANSAC, is what a 1,500 x 2,000 match costs (~6 ms). The arrays are held with their
    answer, so the same objects are the same pair."""
    kept: list[tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]]
    kept = _recent.__dict__.setdefault("pairs", [])
    for query, candidate, found in kept:
        if query is descriptors and candidate is among:
            return found
    found = nearest_two(descriptors, among)
    kept.insert(0, (descriptors, among, found))
    del kept[RECENT_PAIRS:]
    return found


def verify(query: Keypoints, candidate: Keypoints, ratio: float | None = None) -> Verified:
    """Matches between two images that one similarity transform explains (RANSAC); `ratio`:
    Lowe's ratio test's (RATIO)."""
    if len(query) < MIN_MATCHES or len(candidate) < MIN_MATCHES:
        return NONE
    distances, nearest = recent_nearest_two(query.descriptors, candidate.descriptors)
    good = distances[:, 0] < (ratio or RATIO) * distances[:, 1]
    if good.sum() < MIN_MATCHES:
        return NONE
    source = query.xy[good]
    target = candidate.xy[nearest[good, 0]]
    cv2 = opencv()
    transform, mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION_PX, maxIters=500
    )
    if mask is None or transform is None:
        return NONE
    return Verified(int(mask.sum()), transform, target[mask.ravel() > 0])
