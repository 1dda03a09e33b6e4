"""Seeded altered copies of photos: what people do to a photo before they search with it.

The robustness and near-duplicate measurements of `bench/quality.py` and `tests/system/test_quality.py`
both draw their copies here, so the two report the same sets. Each copy applies one edit, or a
combination of two or three, with its parameters drawn from a generator seeded by (seed, index):
the same seed gives byte-identical copies on every machine with the same Pillow.

Edits and their ranges (what users do to a photo before searching with it):
- crop keeping 50-90% of the area, anywhere in the frame;
- rotation up to +-10 degrees, cropped back to the largest upright rectangle inside;
- brightness, contrast and saturation each scaled by 0.7-1.3;
- rescaling by 0.5-2x;
- JPEG recompression at quality 20-80;
- a mirror image;
- a solid border (3-10% of the side) or a caption bar with text (10-18% of the height).
Every copy is finally stored as a JPEG (quality 90 unless the JPEG edit chose its own).

Sideways copies (`sideways_copies`) are a set of their own: the photo turned a quarter (90 or 270
degrees), as a photo whose EXIF orientation a messaging app or an export dropped, or a scan, is
stored. The edit is not among KINDS, so the seeded sets above draw the same copies as before.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

KINDS = ("crop", "rotate", "colour", "rescale", "jpeg", "mirror", "border", "caption")
#: Share of copies that combine two or three edits (the rest apply one).
COMBINED_SHARE = 0.4
FINAL_QUALITY = 90


@dataclass(frozen=True)
class AlteredCopy:
    source: int  # index of the photo it was made from
    edits: tuple[str, ...]
    data: bytes  # JPEG bytes, as a user would upload them


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    area = rng.uniform(0.5, 0.9)
    aspect = rng.uniform(0.8, 1.25)  # relative to the photo's own
    w = min(1.0, math.sqrt(area * aspect))
    h = min(1.0, area / w)
    width, height = image.size
    cw, ch = max(16, round(w * width)), max(16, round(h * height))
    left, top = rng.integers(0, width - cw + 1), rng.integers(0, height - ch + 1)
    return image.crop((int(left), int(top), int(left) + cw, int(top) + ch))


def _rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = rng.uniform(-10, 10)
    width, height = image.size
    rotated = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    # the largest axis-aligned rectangle of the original's aspect inside the rotated frame
    a = math.radians(abs(angle))
    scale = min(width, height) / (min(width, height) * math.cos(a) + max(width, height) * math.sin(a))
    cw, ch = int(width * scale), int(height * scale)
    left, top = (width - cw) // 2, (height - ch) // 2
    return rotated.crop((left, top, left + cw, top + ch))


def _colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(0.7, 1.3))
    return image


def _rescale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    factor = 2 ** rng.uniform(-1, 1)
    size = (max(16, round(image.width * factor)), max(16, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BICUBIC)


def _mirror(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.mirror(image)


def _border(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width = max(2, round(rng.uniform(0.03, 0.10) * max(image.size)))
    colour = tuple(
        int(c) for c in rng.choice(np.array([[255, 255, 255], [0, 0, 0], rng.integers(0, 256, 3)]))
    )
    return ImageOps.expand(image, border=width, fill=colour)


def _caption(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    bar = max(12, round(rng.uniform(0.10, 0.18) * image.height))
    dark = bool(rng.integers(0, 2))
    out = Image.new("RGB", (image.width, image.height + bar), (0, 0, 0) if dark else (255, 255, 255))
    top = bool(rng.integers(0, 2))
    out.paste(image, (0, bar if top else 0))
    draw = ImageDraw.Draw(out)
    words = ["holiday", "summer", "2019", "with friends", "#travel", "look at this", "best day"]
    text = " ".join(rng.choice(words, size=int(rng.integers(2, 4))))
    draw.text(
        (bar // 3, (0 if top else image.height) + bar // 4),
        text,
        fill=(255, 255, 255) if dark else (0, 0, 0),
        font_size=max(8, bar // 2),
    )
    return out


def _sideways(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.transpose(Image.Transpose.ROTATE_90 if rng.integers(0, 2) else Image.Transpose.ROTATE_270)


EDITS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "crop": _crop,
    "rotate": _rotate,
    "colour": _colour,
    "rescale": _rescale,
    "mirror": _mirror,
    "border": _border,
    "caption": _caption,
    "sideways": _sideways,
}


def alter(image: Image.Image, seed: int, index: int) -> tuple[tuple[str, ...], bytes]:
    """One altered copy of `image` as JPEG bytes, and the edits applied in order."""
    rng = np.random.default_rng([seed, index])
    count = int(rng.integers(2, 4)) if rng.random() < COMBINED_SHARE else 1
    edits = tuple(str(e) for e in rng.choice(KINDS, size=count, replace=False))
    return edits, _edited(image, edits, rng)


def _edited(image: Image.Image, edits: tuple[str, ...], rng: np.random.Generator) -> bytes:
    image = image.convert("RGB")
    quality = FINAL_QUALITY
    for edit in edits:
        if edit == "jpeg":
            quality = int(rng.integers(20, 81))
        else:
            image = EDITS[edit](image, rng)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def altered_copies(load: Callable[[int], Image.Image], sources: list[int], seed: int) -> list[AlteredCopy]:
    """One copy of each source photo (`load(i)` opens photo i); copy n is seeded by (seed, n)."""
    copies = []
    for n, source in enumerate(sources):
        edits, data = alter(load(source), seed, n)
        copies.append(AlteredCopy(source, edits, data))
    return copies


def sideways_copies(load: Callable[[int], Image.Image], sources: list[int], seed: int) -> list[AlteredCopy]:
    """One copy of each source photo turned a quarter, 90 or 270 degrees as (seed, n) draws, and
    stored as a JPEG of quality 90: the set of photos stored sideways (bench/README.md)."""
    edits = ("sideways",)
    return [
        AlteredCopy(source, edits, _edited(load(source), edits, np.random.default_rng([seed, n])))
        for n, source in enumerate(sources)
    ]


def pick_sources(count: int, population: int, seed: int) -> list[int]:
    """`count` distinct photo indices out of `population`, drawn with `seed`, in order."""
    rng = np.random.default_rng([seed, 2**31])
    return sorted(int(i) for i in rng.choice(population, size=min(count, population), replace=False))
