"""A photo turned a few degrees on its own frame, its four corners left as flat triangles (what an
editor's "straighten" leaves before it crops, black or greyed by a later contrast change): the
turn read from the triangles, and the photo turned back and cut to the largest upright
rectangle inside, a view the global descriptor scores like its source (rotations.views).

Each corner's triangle has its legs along the two edges that meet there; one leg is
tan(angle) times the other, the longer one along the longer... whichever edge the turn runs
along: top-left and bottom-right share one orientation, the other two the opposite. All four
must agree (a dark corner of an ordinary photo, or a vignette, does not give four consistent
right triangles).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

#: Grey levels a triangle's pixels stay within of its corner pixel (JPEG at quality 30 rings).
FLAT_LEVELS = 14
#: Turns read from the corners outside these degrees are not taken (under: not worth a view;
#: over: not a small straightening).
DEGREES = (1.0, 15.0)
#: The four corners' angles must agree within this many degrees.
AGREEMENT = 2.0
#: Corners that must show a triangle (a caption bar added after the turn covers two).
MIN_CORNERS = 2
#: Shortest leg, px, that counts as a triangle.
MIN_LEG = 3


def _run(line: np.ndarray, corner: float) -> int:
    """Pixels from the start of `line` within FLAT_LEVELS of `corner`."""
    off = np.flatnonzero(np.abs(line.astype(np.float32) - corner) > FLAT_LEVELS)
    return int(off[0]) if len(off) else len(line)


def _triangle(corner: np.ndarray) -> float | None:
    """Degrees of the flat triangle at `corner[0, 0]` (the image seen from that corner), signed
    + when it runs longer along the rows (across) than down; None if there is no straight one."""
    flat = float(corner[0, 0])
    across, down = _run(corner[0], flat), _run(corner[:, 0], flat)
    if min(across, down) < MIN_LEG:
        return None
    sign = 1.0 if across >= down else -1.0
    lines = corner if across >= down else corner.T
    long_leg = max(across, down)
    # the triangle's depth under each point of its long leg falls along a straight edge
    xs = np.arange(long_leg // 8, long_leg - long_leg // 8)
    if len(xs) < 4:
        return None
    depths = np.array([_run(lines[:, x], flat) for x in xs], np.float64)
    slope, intercept = np.polyfit(xs, depths, 1)
    if np.median(np.abs(depths - (slope * xs + intercept))) > 1.5 or slope >= 0:
        return None
    return sign * math.degrees(math.atan(-slope))


def corner_turn(grey: np.ndarray) -> float | None:
    """Degrees (counter-clockwise positive, as Pillow's rotate) a photo was turned on its frame,
    read from its four corner triangles; None when they are not there or disagree."""
    height, width = grey.shape
    if min(height, width) < 32:
        return None
    angles = []
    for top, left in ((True, True), (True, False), (False, True), (False, False)):
        corner = (grey if top else grey[::-1])[:, :: 1 if left else -1]
        angle = _triangle(corner)
        if angle is not None:
            # a counter-clockwise turn leaves the top-left and bottom-right triangles long across
            angles.append(angle if top == left else -angle)
    if len(angles) < MIN_CORNERS or max(angles) - min(angles) > AGREEMENT:
        return None
    turn = float(np.median(angles))
    return turn if DEGREES[0] <= abs(turn) <= DEGREES[1] else None


def straightened(image: Image.Image, turn: float) -> Image.Image:
    """`image` turned back by `turn` degrees and cut to the largest rectangle of its aspect
    inside the original frame (no corner of the turn left in it)."""
    width, height = image.size
    upright = image.rotate(-turn, resample=Image.Resampling.BICUBIC)
    a = math.radians(abs(turn))
    # the photo's own frame, turned: the largest centred rectangle of the aspect inside it
    scale = 1 / (math.cos(a) + max(width, height) / min(width, height) * math.sin(a))
    cw, ch = int(width * scale), int(height * scale)
    left, top = (width - cw) // 2, (height - ch) // 2
    return upright.crop((left, top, left + cw, top + ch))
