"""The combined-edit and detail generators: reproducible, their edits present and within the
documented ranges, valid JPEGs."""

import io

import numpy as np
import pytest
from helpers import PHOTOS
from PIL import Image

from search_by_image.evaluation import alterations_combined as combined
from search_by_image.evaluation import alterations_details as details


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(sorted(PHOTOS.iterdir())[0]).convert("RGB")


@pytest.fixture(scope="module")
def big_photo() -> Image.Image:
    """A camera-size picture without a black pixel: any black in a detail would be a corner."""
    rng = np.random.default_rng(0)
    texture = rng.integers(60, 250, (300, 400, 3), dtype=np.uint8)
    return Image.fromarray(texture).resize((2400, 1800), Image.Resampling.BICUBIC)


def test_combined_copies_are_seeded(photo):
    assert combined.combine(photo, 1, 7) == combined.combine(photo, 1, 7)
    assert combined.combine(photo, 1, 7)[1] != combined.combine(photo, 2, 7)[1]


def test_each_combined_copy_carries_at_least_four_core_edits_and_some_a_caption(photo):
    copies = combined.combined_copies(lambda _: photo, list(range(40)), seed=5)
    for copy in copies:
        assert len(set(copy.edits) & set(combined.CORE)) >= 4, copy.edits
        with Image.open(io.BytesIO(copy.data)) as image:
            assert image.format == "JPEG" and max(image.size) <= 1.2 * max(photo.size)  # a caption adds
    assert any("caption" in c.edits for c in copies)
    assert any(set(combined.CORE) <= set(c.edits) for c in copies)


def test_a_turned_copy_keeps_its_black_corners_and_a_rescale_never_enlarges(photo):
    rng = np.random.default_rng(3)
    turned = np.asarray(combined.STEPS["turn"](photo, rng))
    assert turned.shape[:2] == (photo.height, photo.width)
    assert (turned[[0, 0, -1, -1], [0, -1, 0, -1]] == 0).all()
    for seed in range(10):
        smaller = combined.STEPS["rescale"](photo, np.random.default_rng(seed))
        assert 0.59 * max(photo.size) <= max(smaller.size) <= max(photo.size)


def test_details_are_seeded_and_show_a_tenth_to_a_third_turned_up_to_twelve_degrees(big_photo):
    copies = details.detail_copies(lambda _: big_photo, [0] * 8, seed=5)
    assert details.detail(big_photo, 5, 3).data == copies[3].data
    assert details.detail(big_photo, 6, 3).data != copies[3].data
    for copy in copies:
        assert 0.1 <= copy.area <= 1 / 3 and abs(copy.angle) <= 12
        assert {"detail", "turn", "colour", "phone size", "jpeg"} <= set(copy.edits)
        with Image.open(io.BytesIO(copy.data)) as image:
            pixels = np.asarray(image.convert("RGB"))
        if "caption" not in copy.edits:  # cut inside the photo: no corner is left black
            assert max(pixels.shape[:2]) in details.PHONE_SIDES
            assert pixels[[0, 0, -1, -1], [0, -1, 0, -1]].max(axis=1).min() > 20
    assert max(abs(c.angle) for c in copies) > 6
