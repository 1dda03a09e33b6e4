"""A photo turned a few degrees on its frame (straighten.py): the turn read from its flat corners
after colour changes and hard JPEG, nothing read from ordinary photos, and the query then
searched straightened too (rotations.views)."""

import io

import numpy as np
import pytest
from helpers import PHOTOS, jpeg_bytes
from PIL import Image, ImageDraw, ImageEnhance

from search_by_image.model.preprocessing import Preprocessing
from search_by_image.ranking import rotations, straighten

PREPARE = Preprocessing(resize="keep_aspect", size=448, mean=(0.5,) * 3, std=(0.5,) * 3)


def turned(image: Image.Image, degrees: float, contrast: float = 1.0, quality: int = 40) -> Image.Image:
    out = image.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))
    out = ImageEnhance.Contrast(out).enhance(contrast)
    return Image.open(io.BytesIO(jpeg_bytes(out, quality))).convert("RGB")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(PHOTOS / "coffee.jpg").convert("RGB")


@pytest.mark.parametrize("degrees", [-9.0, -4.0, 2.5, 6.0, 10.0])
def test_the_turn_is_read_from_the_corners_after_colour_and_hard_jpeg(photo, degrees):
    found = straighten.corner_turn(np.asarray(turned(photo, degrees, 0.75).convert("L")))
    assert found is not None and abs(found - degrees) < 1.0, found


def test_a_caption_bar_over_two_corners_leaves_the_other_two(photo):
    image = turned(photo, 5.0)
    ImageDraw.Draw(image).rectangle((0, image.height - 40, image.width, image.height), fill="white")
    found = straighten.corner_turn(np.asarray(image.convert("L")))
    assert found is not None and abs(found - 5.0) < 1.0


def test_ordinary_photos_have_no_turn_and_get_no_extra_view():
    preprocessing = PREPARE
    for path in sorted(PHOTOS.iterdir()):
        image = Image.open(path).convert("RGB")
        assert straighten.corner_turn(np.asarray(image.convert("L"))) is None, path.name
    assert len(rotations.views(image, preprocessing)) == 1 + len(rotations.TURNS)


def test_a_turned_query_is_also_searched_straightened_without_its_corners(photo):
    image = turned(photo, 7.0)
    views = rotations.views(image, PREPARE)
    assert len(views) == 2 + len(rotations.TURNS) and rotations.penalty(len(views) - 1) == 0
    upright = straighten.straightened(image, 7.0)
    corners = np.asarray(upright)[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert corners.max(axis=1).min() > 20  # no black corner left
