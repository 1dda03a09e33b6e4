"""Seeded copies made the way photos reach people: several edits at once in every copy.

`alterations.py` (kept as it is, the bench's first set) applies one edit to most copies. A
shared photo has usually been cropped in an editor, straightened a little, brightened, then
scaled and recompressed hard by a messaging app, sometimes with a caption added. Each copy here
carries at least four of the five core edits below, in that order, and one in three a caption
bar; the parameters are drawn from a generator seeded by (seed, index), so a seed gives the same
bytes on every machine with the same Pillow.

- crop keeping 50-85% of the area, anywhere in the frame;
- a small turn, 2-10 degrees either way, on the same frame with its corners left black (what an
  editor's "straighten" shows before it is cropped);
- brightness and contrast each scaled by 0.7-1.3;
- a rescale to a messaging app's size: the longer side to 0.6-1.0 of min(the photo's, one of
  MESSAGING_SIDES) (apps shrink to 1280-1600 px and never enlarge);
- JPEG recompression at quality 30-50 (the copy is stored at quality 90 when it is left out);
- a caption bar (one copy in three), as `alterations.py` draws it.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance

from search_by_image.evaluation.alterations import EDITS, FINAL_QUALITY, AlteredCopy

CORE = ("crop", "turn", "colour", "rescale", "jpeg")
#: Share of copies that leave one core edit out (the rest carry all five).
ONE_LEFT_OUT = 0.5
CAPTION_SHARE = 1 / 3
CROP_AREA = (0.5, 0.85)
TURN_DEGREES = (2.0, 10.0)
COLOUR = (0.7, 1.3)
#: Longer sides messaging apps send photos at.
MESSAGING_SIDES = (800, 1280, 1600)
RESCALE = (0.6, 1.0)
JPEG_QUALITY = (30, 50)


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    area = rng.uniform(*CROP_AREA)
    aspect = rng.uniform(0.8, 1.25)
    w = min(1.0, np.sqrt(area * aspect))
    h = min(1.0, area / w)
    cw, ch = max(16, round(w * image.width)), max(16, round(h * image.height))
    left, top = int(rng.integers(0, image.width - cw + 1)), int(rng.integers(0, image.height - ch + 1))
    return image.crop((left, top, left + cw, top + ch))


def _turn(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = rng.uniform(*TURN_DEGREES) * rng.choice([-1, 1])
    return image.rotate(float(angle), resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0))


def _colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(*COLOUR))
    return ImageEnhance.Contrast(image).enhance(rng.uniform(*COLOUR))


def _rescale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    side = min(max(image.size), int(rng.choice(MESSAGING_SIDES))) * rng.uniform(*RESCALE)
    scale = side / max(image.size)
    size = max(16, round(image.width * scale)), max(16, round(image.height * scale))
    return image.resize(size, Image.Resampling.BICUBIC)


STEPS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "crop": _crop,
    "turn": _turn,
    "colour": _colour,
    "caption": EDITS["caption"],
    "rescale": _rescale,
}


def combine(image: Image.Image, seed: int, index: int) -> tuple[tuple[str, ...], bytes]:
    """One copy of `image` as JPEG bytes, and its edits in the order applied."""
    rng = np.random.default_rng([seed, index])
    edits = list(CORE)
    if rng.random() < ONE_LEFT_OUT:
        edits.remove(str(rng.choice(CORE)))
    if rng.random() < CAPTION_SHARE:
        edits.insert(edits.index("rescale") if "rescale" in edits else len(edits), "caption")
    image = image.convert("RGB")
    for edit in edits:
        if edit != "jpeg":
            image = STEPS[edit](image, rng)
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)) if "jpeg" in edits else FINAL_QUALITY
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return tuple(edits), buffer.getvalue()


def combined_copies(load: Callable[[int], Image.Image], sources: list[int], seed: int) -> list[AlteredCopy]:
    """One combined-edit copy of each source photo (`load(i)` opens photo i); copy n is seeded
    by (seed, n)."""
    copies = []
    for n, source in enumerate(sources):
        edits, data = combine(load(source), seed, n)
        copies.append(AlteredCopy(source, edits, data))
    return copies
