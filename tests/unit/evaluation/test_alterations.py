"""The altered-copy generator: reproducible, within the documented ranges, valid JPEGs."""

import io

import numpy as np
import pytest
from helpers import PHOTOS
from PIL import Image

from search_by_image.evaluation.alterations import (
    EDITS,
    KINDS,
    alter,
    altered_copies,
    pick_sources,
    sideways_copies,
)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(sorted(PHOTOS.iterdir())[0]).convert("RGB")


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_copies(photo):
    assert alter(photo, 1, 7) == alter(photo, 1, 7)
    assert alter(photo, 1, 7)[1] != alter(photo, 2, 7)[1]
    assert pick_sources(20, 811, 1) == pick_sources(20, 811, 1) != pick_sources(20, 811, 2)


def test_every_copy_is_a_decodable_jpeg_and_edits_are_combined_sometimes(photo):
    copies = altered_copies(lambda _: photo, list(range(60)), seed=5)
    sizes = [len(c.edits) for c in copies]
    assert set(sizes) <= {1, 2, 3} and 1 in sizes and max(sizes) > 1
    assert {e for c in copies for e in c.edits} == set(KINDS)
    for copy in copies:
        with Image.open(io.BytesIO(copy.data)) as image:
            assert image.format == "JPEG" and min(image.size) >= 16


@pytest.mark.parametrize("seed", range(20))
def test_crops_keep_half_to_nine_tenths_of_the_area(photo, seed):
    out = EDITS["crop"](photo, np.random.default_rng(seed))
    share = out.width * out.height / (photo.width * photo.height)
    assert 0.45 <= share <= 0.92


def test_rotations_are_cropped_back_to_an_upright_picture_without_corners(photo):
    out = EDITS["rotate"](photo, np.random.default_rng(3))
    corners = np.asarray(out)[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert out.width < photo.width and corners.sum(axis=1).min() > 0  # no black fill left


def test_captions_and_borders_make_the_picture_bigger(photo):
    for edit in ("caption", "border"):
        out = EDITS[edit](photo, np.random.default_rng(0))
        assert out.width * out.height > photo.width * photo.height


def test_sideways_copies_are_the_photo_turned_a_quarter_either_way(photo):
    copies = sideways_copies(lambda _: photo, list(range(8)), seed=4)
    assert copies == sideways_copies(lambda _: photo, list(range(8)), seed=4)
    assert all(c.edits == ("sideways",) and "sideways" not in KINDS for c in copies)
    turns = set()
    for copy in copies:
        with Image.open(io.BytesIO(copy.data)) as image:
            assert image.size == photo.size[::-1]
            pixels = np.asarray(image.convert("RGB"), np.float32)
        upright = {
            name: np.abs(np.asarray(photo.transpose(turn), np.float32) - pixels).mean()
            for name, turn in (("90", Image.Transpose.ROTATE_90), ("270", Image.Transpose.ROTATE_270))
        }
        turns.add(min(upright, key=upright.get))
    assert turns == {"90", "270"}
