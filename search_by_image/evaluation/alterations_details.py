"""Seeded details of camera-size photos: a small part of a big picture, cut out turned,
recoloured and shown at a phone screen's size, as people share what caught their eye.

Each copy of a photo (W x H px):
- a window of 1/10 to 1/3 of the photo's area (DETAIL_AREA), of aspect 9:16 to 16:9, turned
  up to 12 degrees either way (DETAIL_DEGREES) against the photo's frame and wholly inside it
  (no black corners: what an editor's straightened crop gives);
- its brightness, contrast and saturation each scaled by 0.7-1.3 (`alterations.py`'s colour);
- resized, with Pillow's antialiasing, to a phone screen's longer side (PHONE_SIDES);
- one in three with a caption bar (`alterations.py`'s);
- stored as a JPEG of quality 60-85.
Parameters come from a generator seeded by (seed, index): the same bytes on every machine with
the same Pillow. Each copy records its area share and angle, so misses can be read by size.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from search_by_image.evaluation.alterations import EDITS, AlteredCopy

DETAIL_AREA = (0.1, 1 / 3)
DETAIL_DEGREES = 12.0
#: Window aspect (width / height) between portrait 9:16 and landscape 16:9.
ASPECT = (9 / 16, 16 / 9)
PHONE_SIDES = (1080, 1280, 1600, 1920, 2340)
CAPTION_SHARE = 1 / 3
JPEG_QUALITY = (60, 85)


@dataclass(frozen=True)
class DetailCopy(AlteredCopy):
    #: share of the photo's area the detail shows
    area: float = 0.0
    #: degrees it is turned against the photo's frame (counter-clockwise positive)
    angle: float = 0.0


def _window(width: int, height: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """(window width, window height, angle in degrees): a turned window that fits the photo,
    drawn again until one does (a long window turned in a narrow photo may not)."""
    while True:
        area = rng.uniform(*DETAIL_AREA) * width * height
        aspect = math.exp(rng.uniform(math.log(ASPECT[0]), math.log(ASPECT[1])))
        angle = rng.uniform(-DETAIL_DEGREES, DETAIL_DEGREES)
        w, h = math.sqrt(area * aspect), math.sqrt(area / aspect)
        a = math.radians(abs(angle))
        if w * math.cos(a) + h * math.sin(a) < width and w * math.sin(a) + h * math.cos(a) < height:
            return w, h, angle


def detail(image: Image.Image, seed: int, index: int) -> DetailCopy:
    """One detail of `image` (source 0: the caller sets it), as JPEG bytes."""
    rng = np.random.default_rng([seed, index])
    image = image.convert("RGB")
    w, h, angle = _window(image.width, image.height, rng)
    a = math.radians(abs(angle))
    box_w, box_h = w * math.cos(a) + h * math.sin(a), w * math.sin(a) + h * math.cos(a)
    cx = rng.uniform(box_w / 2, image.width - box_w / 2)
    cy = rng.uniform(box_h / 2, image.height - box_h / 2)
    # the window's bounding box, turned about its centre so the window is upright, then cut out
    half = math.ceil(max(box_w, box_h) / 2) + 2
    around = image.crop((round(cx) - half, round(cy) - half, round(cx) + half, round(cy) + half))
    upright = around.rotate(-angle, resample=Image.Resampling.BICUBIC)
    centre = upright.width / 2
    window = upright.crop(
        (round(centre - w / 2), round(centre - h / 2), round(centre + w / 2), round(centre + h / 2))
    )
    window = EDITS["colour"](window, rng)
    side = int(rng.choice(PHONE_SIDES))
    scale = side / max(window.size)
    window = window.resize(
        (round(window.width * scale), round(window.height * scale)), Image.Resampling.BICUBIC
    )
    edits = ["detail", "turn", "colour", "phone size"]
    if rng.random() < CAPTION_SHARE:
        window = EDITS["caption"](window, rng)
        edits.append("caption")
    buffer = io.BytesIO()
    window.save(buffer, format="JPEG", quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    edits.append("jpeg")
    return DetailCopy(0, tuple(edits), buffer.getvalue(), w * h / (image.width * image.height), angle)


def detail_copies(load: Callable[[int], Image.Image], sources: list[int], seed: int) -> list[DetailCopy]:
    """One detail per entry of `sources` (a photo may come several times: `load(i)` opens photo
    i, each distinct photo once); copy n is seeded by (seed, n)."""
    copies: list[DetailCopy] = []
    opened: dict[int, Image.Image] = {}
    for n, source in enumerate(sources):
        if source not in opened:
            opened = {source: load(source).convert("RGB")}  # sources come grouped: one in memory
        made = detail(opened[source], seed, n)
        copies.append(DetailCopy(source, made.edits, made.data, made.area, made.angle))
    return copies
