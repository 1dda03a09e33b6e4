"""Two images once one transform aligns them (local_features.verify): the query's grey warped
onto the candidate's (`overlap`), whether their pixels agree (`aligned_correlation`), and whether
anything still moves against the rest (`residual_motion`: a copy, no; a burst from one spot, its
foreground; a tilted re-shot, its perspective). OpenCV is imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search_by_image.ranking.local_features import Keypoints, Verified, opencv

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
#: another shot" (bench/README.md) this differs from the medium preset alone on 1 pair of 1,565.
#: 0.16, not 0.1: the same verdicts on the 418 aligned same-scene Holidays pairs and on 1,719
#: aligned pairs of a duplicates pass, and half as many of the latter need the second flow.
CLEARLY_STILL = 0.16
CLEARLY_MOVED = 0.5
#: Smallest shared part (px each way at the candidate's size) compared cell by cell when the
#: query shows under a tenth of the candidate (a detail of it): GRID cells of 8 px at least.
FOOTPRINT_PX = 48
#: Grey levels a flat border or bar may vary by either side of its middle (`_content`).
BORDER_LEVELS = 3
#: Local contrast normalisation before the dense flow (Gaussian sigma, px): recoloured copies
#: (brightness, contrast, saturation) must not read as motion.
FLOW_NORMALISE_SIGMA = 6.0
#: Fewest textured pixels the residual motion is measured on (fewer: not measured, infinite).
FLOW_MIN_PIXELS = 200
#: Grey levels a pixel that counts as textured changes by, per pixel once blurred (`_textured`):
#: EDGE_LEVELS, or FLAT_EDGE_LEVELS where that leaves under FLOW_MIN_PIXELS (a smooth picture,
#: such as a detail of an abstract wallpaper at its larger view, whose gentle gradients DIS
#: still follows: bench/README.md "Stored keypoints").
EDGE_LEVELS = 4
FLAT_EDGE_LEVELS = 2
#: The residual motion's fit uses every FIT_STRIDE-th pixel each way: the same figure within
#: a few hundredths of a pixel, in a ninth of the least-squares time.
FIT_STRIDE = 3
#: `residual_motion(boxed=True)` computes the flow on the box around the compared pixels plus
#: this margin (px), not on the whole frame: a detail or a shared quarter costs its own area,
#: 2.7x less flow time on a duplicates pass's pairs. The flow's pyramid then sees less context:
#: the figure moves by 0.01 px (median; 0.12 px at the 95th percentile) and 0.3% of the pairs
#: measured land on the other side of verification.COPY_MOTION (bench/README.md).
FLOW_MARGIN = 32


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
    cv2 = opencv()
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
    differs in parallax, light and whatever moved: markedly lower. The GRID x GRID cells cover
    the candidate; where the query shows too small a part of it for that (a detail cut from a
    big photo: under a tenth, or under four cells), they cover the shared part's bounding box
    instead (`_footprint`). -1 when they share too little even so.
    """
    cv2 = opencv()
    a = cv2.GaussianBlur(shared.warped, (0, 0), BLUR_SIGMA).astype(np.float32)
    b = cv2.GaussianBlur(candidate.grey, (0, 0), BLUR_SIGMA).astype(np.float32)
    inside = shared.inside
    found = -1.0
    if inside.sum() >= 0.1 * inside.size:
        found = _cell_correlation(inside, a, b)
    if found == -1.0:
        box = _footprint(inside)
        if box is not None:
            found = _cell_correlation(inside[box], a[box], b[box])
    return found


def _footprint(inside: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of `inside`, if it is at least FOOTPRINT_PX each way."""
    rows, columns = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if not len(rows) or rows[-1] - rows[0] < FOOTPRINT_PX or columns[-1] - columns[0] < FOOTPRINT_PX:
        return None
    return slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)


def _cell_correlation(inside: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Median correlation of blurred greys `a` and `b` over the textured GRID x GRID cells that
    are at least half `inside`; -1 with fewer than four such cells."""
    height, width = inside.shape
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


def residual_motion(candidate: Keypoints, shared: Overlap, boxed: bool = False) -> float:
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
    (bench/README.md "Copies or another shot"). On a flat picture, where too few pixels change
    by EDGE_LEVELS, the gentler gradients (FLAT_EDGE_LEVELS) are followed; infinite when even
    those are too few.
    `boxed`: the flow on the compared part's box only (FLOW_MARGIN; a duplicates pass).
    """
    cv2 = opencv()
    keep = cv2.erode(shared.inside.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    box = _around(keep, FLOW_MARGIN) if boxed else (slice(None), slice(None))
    if box is None:
        return float("inf")
    sampled = np.zeros_like(keep)
    sampled[::FIT_STRIDE, ::FIT_STRIDE] = True  # on the whole frame's grid: the same pixels
    keep, sampled = keep[box], sampled[box]
    warped, grey = shared.warped[box], candidate.grey[box]
    textured = keep & _textured(warped) & _textured(grey)
    if textured.sum() < FLOW_MIN_PIXELS:  # a flat picture: its gentler gradients
        textured = keep & _textured(warped, FLAT_EDGE_LEVELS) & _textured(grey, FLAT_EDGE_LEVELS)
    keep = textured
    if keep.sum() < FLOW_MIN_PIXELS:
        return float("inf")
    keep &= sampled
    pair = _normalise(warped), _normalise(grey)
    moved = _unexplained(pair, keep, cv2.DISOPTICAL_FLOW_PRESET_FAST)
    if CLEARLY_STILL <= moved <= CLEARLY_MOVED:
        moved = _unexplained(pair, keep, cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return moved


def _around(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of `mask` widened by `margin` px each way (within the frame); None if
    `mask` is empty."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return (
        slice(max(0, rows[0] - margin), rows[-1] + margin + 1),
        slice(max(0, columns[0] - margin), columns[-1] + margin + 1),
    )


def _unexplained(pair: tuple[np.ndarray, np.ndarray], keep: np.ndarray, preset: int) -> float:
    """`residual_motion`'s figure for one DIS preset: the flow from pair[0] to pair[1] at the
    `keep` pixels, less one similarity fitted to it, 75th percentile."""
    # one per call: an instance keeps buffers between calls, and results are checked side by side
    flow = opencv().DISOpticalFlow_create(preset).calc(*pair, None)
    ys, xs = np.nonzero(keep)
    x, y = xs.astype(np.float64), ys.astype(np.float64)
    u, v = x + flow[keep, 0], y + flow[keep, 1]
    # (u, v) = [[a, -b], [b, a]] (x, y) + t, least squares (closed form: the centred sums; no
    # BLAS call, whose threads cost more than these sums); refitted on its best 75% (a
    # caption's letters or a moved person must not bend the fit)
    rows: np.ndarray | slice = slice(None)
    for _ in range(2):
        mx, my, mu, mv = x[rows].mean(), y[rows].mean(), u[rows].mean(), v[rows].mean()
        cx, cy, cu, cv = x[rows] - mx, y[rows] - my, u[rows] - mu, v[rows] - mv
        norm = (cx * cx).sum() + (cy * cy).sum()
        a = ((cx * cu).sum() + (cy * cv).sum()) / norm
        b = ((cx * cv).sum() - (cy * cu).sum()) / norm
        tx, ty = mu - (a * mx - b * my), mv - (b * mx + a * my)
        residual = np.hypot(a * x - b * y + tx - u, b * x + a * y + ty - v)
        rows = residual <= np.percentile(residual, 75)
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
    grey = grey.astype(np.float32)
    detail = grey - _wide_blur(grey, FLOW_NORMALISE_SIGMA)
    spread = np.sqrt(_wide_blur(detail * detail, FLOW_NORMALISE_SIGMA)) + 2.0
    return np.clip(128 + 40 * detail / spread, 0, 255).astype(np.uint8)


def _wide_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of `sigma` px (several) computed at half size: the image halved (a 2 px
    box, variance 1/4 px^2), blurred there, and doubled again (bilinear, variance 2/3 px^2), the
    three variances adding up to sigma^2. A quarter of the pixels and half the kernel: a fifth
    of the time, and what is left of the image's detail after such a blur (none above a tenth of
    a cycle a pixel) survives halving."""
    cv2 = opencv()
    height, width = image.shape
    half = cv2.resize(image, ((width + 1) // 2, (height + 1) // 2), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(half, (0, 0), np.sqrt(sigma * sigma - 0.25 - 2 / 3) / 2)
    return cv2.resize(blurred, (width, height), interpolation=cv2.INTER_LINEAR)


def _textured(grey: np.ndarray, levels: int = EDGE_LEVELS) -> np.ndarray:
    """Where the grey has an edge to follow (gradient over `levels` a pixel, once blurred).

    `np.hypot(*np.gradient(blurred)) > levels` exactly, in a sixth of its time: the differences are
    taken at twice the gradient (central inside, one-sided and doubled at the edges, as
    np.gradient does), which on a uint8 grey are integers, so the test is exact in float32."""
    cv2 = opencv()
    blurred = cv2.GaussianBlur(grey, (0, 0), BLUR_SIGMA)
    across = np.array([[-1, 0, 1]], np.float32)
    dx = cv2.filter2D(blurred, cv2.CV_32F, across, borderType=cv2.BORDER_REPLICATE)
    dy = cv2.filter2D(blurred, cv2.CV_32F, across.T, borderType=cv2.BORDER_REPLICATE)
    dx[:, [0, -1]] *= 2
    dy[[0, -1]] *= 2
    return dx * dx + dy * dy > (2 * levels) ** 2
