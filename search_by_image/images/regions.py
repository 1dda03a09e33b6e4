"""Search by region: only the part of the query image inside a box is embedded.

A box is `left,top,right,bottom`, in pixels of the image as displayed (EXIF orientation applied),
or as fractions of its width and height when all four numbers are at most 1 (the page sends
fractions; `0,0,1,1` is the whole image). A pixel box that small could not be searched anyway
(MIN_SIDE_PX), so the two readings never collide.
"""

from __future__ import annotations

import math

from PIL import Image

from search_by_image.errors import BoxError

#: Smallest box side worth embedding: under the network's 32 px stride it is a handful of cells.
MIN_SIDE_PX = 16

Box = tuple[float, float, float, float]


def parse_box(text: str | None) -> Box | None:
    """`left,top,right,bottom` as four floats, or None for no box; BoxError says what is wrong."""
    if text is None or not text.strip():
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise BoxError(f"expected four numbers left,top,right,bottom, got {text!r}")
    left, top, right, bottom = values
    if min(values) < 0:
        raise BoxError("box coordinates cannot be negative")
    if right <= left or bottom <= top:
        raise BoxError("right must be greater than left, and bottom greater than top")
    return left, top, right, bottom


def to_pixels(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """The box in whole pixels of a `width` x `height` image, checked against it."""
    left, top, right, bottom = box
    if max(box) <= 1:
        left, right, top, bottom = left * width, right * width, top * height, bottom * height
    elif right > width or bottom > height:
        raise BoxError(f"the box reaches ({right:g}, {bottom:g}), outside the {width}x{height} image")
    box_px = (round(left), round(top), round(right), round(bottom))
    if box_px[2] - box_px[0] < MIN_SIDE_PX or box_px[3] - box_px[1] < MIN_SIDE_PX:
        raise BoxError(
            f"the box is {box_px[2] - box_px[0]}x{box_px[3] - box_px[1]} pixels; "
            f"it needs at least {MIN_SIDE_PX}x{MIN_SIDE_PX}"
        )
    return box_px


def crop_to_box(image: Image.Image, box: Box) -> tuple[Image.Image, tuple[int, int, int, int]]:
    box_px = to_pixels(box, image.width, image.height)
    return image.crop(box_px), box_px
