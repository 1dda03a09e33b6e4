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
- `aligned_correlation` and `residual_motion`: once one image is warped onto the other
  (`overlap`), do their pixels agree, and does anything still move (a copy: no; a burst from one
  spot: its foreground).

OpenCV is imported on first use: it adds ~0.4 s and ~35 MB to a process that never verifies.
"""

from __future__ import annotations

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
#: The shared part is compared cell by cell (GRID x GRID), so a caption bar or a border
#: added over part of it lowers a few cells, not the median.
GRID = 6
#: Both images are blurred this much (px) before comparing: JPEG blocks, resampling and a pixel of
#: misalignment must not count as a difference.
BLUR_SIGMA = 1.5
#: Pixels around the inliers' bounding box still compared: the part of the images the matches
#: cover, not a border or caption bar added around it.
BOX_MARGIN = 24
#: DIS's fast preset decides alone below CLEARLY_STILL px (a copy) and above CLEARLY_MOVED (not
#: one): the medium preset, twice its time, decides between them. On the pairs of "Copies or
#: another shot" (bench/README.md) this differs from the medium preset alone on 1 pair of 1,565,
#: and a quarter of the pairs need the second flow.
CLEARLY_STILL = 0.1
CLEARLY_MOVED = 0.5
#: Grey levels a flat border or bar may vary by either side of its middle (`_content`).
BORDER_LEVELS = 3
#: Local contrast normalisation before the dense flow (Gaussian sigma, px): recoloured copies
#: (brightness, contrast, saturation) must not read as motion.
FLOW_NORMALISE_SIGMA = 6.0
#: Fewest textured pixels the residual motion is measured on (fewer: not measured, infinite).
FLOW_MIN_PIXELS = 200
#: The residual motion's fit uses every FIT_STRIDE-th pixel each way: the same figure within
#: a few hundredths of a pixel, in a ninth of the least-squares time.
FIT_STRIDE = 3


@dataclass(frozen=True)
class Keypoints:
    #: n x 2 float32 positions, in pixels of the image scaled to SIDE px
    xy: np.ndarray
    #: n x 32 uint8 ORB descriptors
    descriptors: np.ndarray
    #: the greyscale image they were found on (SIDE px), for comparing pixels once aligned; or
    #: what reads it again (`without_grey`: a cache keeps ~20 KB an image, not ~120 KB)
    pixels: np.ndarray | Callable[[], np.ndarray]

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


def _cv2():
    import cv2

    cv2.setNumThreads(1)  # per request; the service's threads are the parallelism
    return cv2


def scaled_grey(rgb: np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 image as greyscale with its longest side at most SIDE px."""
    cv2 = _cv2()
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    scale = SIDE / max(grey.shape)
    if scale < 1:
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def extract(rgb: np.ndarray) -> Keypoints:
    """ORB keypoints of an RGB image (H x W x 3 uint8, any size: scaled to SIDE px first)."""
    cv2 = _cv2()
    grey = scaled_grey(rgb)
    # local contrast equalised: corners in flat photos, and recoloured copies look alike
    if min(grey.shape) <= 2 * ORB_BORDER:  # a strip or a speck: nothing to match
        return _empty(grey)
    equalised = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
    for threshold in FAST_THRESHOLDS:
        orb = cv2.ORB_create(nfeatures=KEYPOINTS, fastThreshold=threshold)
        points, descriptors = orb.detectAndCompute(equalised, None)
        if len(points) >= KEYPOINTS // 4:
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


def verify(query: Keypoints, candidate: Keypoints) -> Verified:
    """Matches between two images that one similarity transform explains (RANSAC)."""
    if len(query) < MIN_MATCHES or len(candidate) < MIN_MATCHES:
        return NONE
    distances, nearest = nearest_two(query.descriptors, candidate.descriptors)
    good = distances[:, 0] < RATIO * distances[:, 1]
    if good.sum() < MIN_MATCHES:
        return NONE
    source = query.xy[good]
    target = candidate.xy[nearest[good, 0]]
    cv2 = _cv2()
    transform, mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION_PX, maxIters=500
    )
    if mask is None or transform is None:
        return NONE
    return Verified(int(mask.sum()), transform, target[mask.ravel() > 0])


@dataclass(frozen=True)
class Overlap:
    """The query's grey warped onto the candidate's, and where both show the same thing."""

    warped: np.ndarray
    #: inside both images' flat margins and within BOX_MARGIN px of the inliers' bounding box
    inside: np.ndarray


def overlap(query: Keypoints, candidate: Keypoints, found: Verified) -> Overlap:
    """The query's grey warped onto the candidate, and the mask of what both show: inside both
    images' flat margins (`_content`; the query's warped), within BOX_MARGIN px of the inliers'
    bounding box (a border or caption bar added around a copy has no inliers). Made once per
    pair, for both measures below."""
    cv2 = _cv2()
    height, width = candidate.grey.shape
    size = (width, height)
    warped = cv2.warpAffine(query.grey, found.transform, size, flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(_content(query.grey), found.transform, size, flags=cv2.INTER_NEAREST)
    inside = cv2.erode(inside & _content(candidate.grey), np.ones((5, 5), np.uint8)) > 0
    if found.points is not None and len(found.points):
        (left, top), (right, bottom) = found.points.min(axis=0), found.points.max(axis=0)
        box = np.zeros_like(inside)
        box[
            max(0, int(top) - BOX_MARGIN) : int(bottom) + BOX_MARGIN + 1,
            max(0, int(left) - BOX_MARGIN) : int(right) + BOX_MARGIN + 1,
        ] = True
        inside &= box
    return Overlap(warped, inside)


def aligned_correlation(candidate: Keypoints, shared: Overlap) -> float:
    """Pixel correlation of the query warped onto the candidate, over the part they share.

    An edited copy (recoloured, recompressed, rescaled, cropped, rotated, captioned) is the same
    pixels once aligned: correlation near 1. Another shot of the scene, even from the same spot,
    differs in parallax, light and whatever moved: markedly lower. -1 when they share too little.
    """
    cv2 = _cv2()
    inside = shared.inside
    height, width = inside.shape
    if inside.sum() < 0.1 * inside.size:
        return -1.0
    a = cv2.GaussianBlur(shared.warped, (0, 0), BLUR_SIGMA).astype(np.float32)
    b = cv2.GaussianBlur(candidate.grey, (0, 0), BLUR_SIGMA).astype(np.float32)
    # GRID x GRID cells (the last rows and columns that do not divide evenly are left out)
    ch, cw = height // GRID, width // GRID
    if ch < 2 or cw < 2:
        return -1.0

    def cells(x: np.ndarray) -> np.ndarray:
        return x[: ch * GRID, : cw * GRID].reshape(GRID, ch, GRID, cw).swapaxes(1, 2).reshape(GRID * GRID, -1)

    keep, a, b = cells(inside).astype(np.float32), cells(a), cells(b)
    count = keep.sum(axis=1)
    used = count >= 0.5 * keep.shape[1]
    keep, a, b, count = keep[used], a[used], b[used], count[used]
    if len(count) < 4:
        return -1.0
    a = (a - (a * keep).sum(axis=1, keepdims=True) / count[:, None]) * keep
    b = (b - (b * keep).sum(axis=1, keepdims=True) / count[:, None]) * keep
    energy = (a * a).sum(axis=1) * (b * b).sum(axis=1)
    textured = energy > (1e-3 * 25 * count) ** 2  # flat cells (sky, a wall) say nothing
    if textured.sum() < 4:
        return -1.0
    return float(np.median((a * b).sum(axis=1)[textured] / np.sqrt(energy[textured])))


def residual_motion(candidate: Keypoints, shared: Overlap) -> float:
    """How far the aligned pixels still move (px at the candidate's size): the 75th percentile,
    over the textured part both show, of the dense optical flow (DIS, OpenCV's "medium" preset
    where the "fast" one is not clear-cut, on locally contrast-normalised grey) left once one
    similarity transform fitted to that flow is taken out; the fit and the percentile on every
    FIT_STRIDE-th pixel each way.

    An edited copy is one similarity of the other: once aligned nothing moves (under 0.25 px for
    99% of the altered copies that align). Another shot, even a burst from one spot that
    correlates above 0.95, has parallax, a tilted camera's perspective, waves and people: its
    flow is not one similarity. DIS over Farneback, and the fit on a ninth of the pixels: a third
    of the time, and fewer distinct photos grouped as duplicates for as many copies found
    (bench/README.md "Copies or another shot"). Infinite when too little is textured.
    """
    cv2 = _cv2()
    warped, inside = shared.warped, shared.inside
    keep = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    keep &= _textured(warped) & _textured(candidate.grey)
    if keep.sum() < FLOW_MIN_PIXELS:
        return float("inf")
    sampled = np.zeros_like(keep)
    sampled[::FIT_STRIDE, ::FIT_STRIDE] = True
    keep &= sampled
    pair = _normalise(warped), _normalise(candidate.grey)
    moved = _unexplained(pair, keep, cv2.DISOPTICAL_FLOW_PRESET_FAST)
    if CLEARLY_STILL <= moved <= CLEARLY_MOVED:
        moved = _unexplained(pair, keep, cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return moved


def _unexplained(pair: tuple[np.ndarray, np.ndarray], keep: np.ndarray, preset: int) -> float:
    """`residual_motion`'s figure for one DIS preset: the flow from pair[0] to pair[1] at the
    `keep` pixels, less one similarity fitted to it, 75th percentile."""
    # one per call: an instance keeps buffers between calls, and results are checked side by side
    flow = _cv2().DISOpticalFlow_create(preset).calc(*pair, None)
    ys, xs = np.nonzero(keep)
    source = np.stack([xs, ys], axis=1).astype(np.float64)
    target = (source + flow[keep]).ravel()
    # target = [[a, -b], [b, a]] source + t, least squares; refitted on its best 75% (a caption's
    # letters or a moved person must not bend the fit)
    design = np.zeros((2 * len(source), 4))
    design[0::2, 0], design[0::2, 1], design[0::2, 2] = source[:, 0], -source[:, 1], 1
    design[1::2, 0], design[1::2, 1], design[1::2, 3] = source[:, 1], source[:, 0], 1
    rows = np.ones(len(design), bool)
    for _ in range(2):
        solution = np.linalg.lstsq(design[rows], target[rows], rcond=None)[0]
        residual = np.linalg.norm((design @ solution - target).reshape(-1, 2), axis=1)
        rows = np.repeat(residual <= np.percentile(residual, 75), 2)
    return float(np.percentile(residual, 75))


def _content(grey: np.ndarray) -> np.ndarray:
    """255 inside the image's flat margins, 0 on them: the rows and columns at each edge whose
    grey varies by at most 2 x BORDER_LEVELS (a border or bar added to a copy, or an even sky,
    which has no texture to measure anyway). The edge of a border is no motion of the photo."""
    height, width = grey.shape
    flat_rows = np.ptp(grey, axis=1) <= 2 * BORDER_LEVELS
    flat_columns = np.ptp(grey, axis=0) <= 2 * BORDER_LEVELS

    def run(flat: np.ndarray) -> int:
        return len(flat) if flat.all() else int(np.argmin(flat))

    top, bottom = run(flat_rows), run(flat_rows[::-1])
    left, right = run(flat_columns), run(flat_columns[::-1])
    content = np.zeros_like(grey)
    content[top : max(top, height - bottom), left : max(left, width - right)] = 255
    return content


def _normalise(grey: np.ndarray) -> np.ndarray:
    """Grey with its local mean and contrast evened out (uint8)."""
    cv2 = _cv2()
    grey = grey.astype(np.float32)
    detail = grey - cv2.GaussianBlur(grey, (0, 0), FLOW_NORMALISE_SIGMA)
    spread = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), FLOW_NORMALISE_SIGMA)) + 2.0
    return np.clip(128 + 40 * detail / spread, 0, 255).astype(np.uint8)


def _textured(grey: np.ndarray) -> np.ndarray:
    """Where the grey has an edge to follow (gradient over 4 levels a pixel, once blurred).

    `np.hypot(*np.gradient(blurred)) > 4` exactly, in a sixth of its time: the differences are
    taken at twice the gradient (central inside, one-sided and doubled at the edges, as
    np.gradient does), which on a uint8 grey are integers, so the test is exact in float32."""
    cv2 = _cv2()
    blurred = cv2.GaussianBlur(grey, (0, 0), BLUR_SIGMA)
    across = np.array([[-1, 0, 1]], np.float32)
    dx = cv2.filter2D(blurred, cv2.CV_32F, across, borderType=cv2.BORDER_REPLICATE)
    dy = cv2.filter2D(blurred, cv2.CV_32F, across.T, borderType=cv2.BORDER_REPLICATE)
    dx[:, [0, -1]] *= 2
    dy[[0, -1]] *= 2
    return dx * dx + dy * dy > (2 * 4) ** 2
