"""What a duplicates pass's checks cost less for, and still say: the flow's contrast normalised
with a blur at half size, a mirror tried only where the photo itself does not match, and the
greys compared read as a JPEG's luma."""

import cv2
import numpy as np
import pytest
from helpers import require_datasets
from PIL import Image, ImageOps

from search_by_image.catalog import thumbnails
from search_by_image.ranking import alignment, indexed_keypoints, local_features, verification

PHOTO, OTHER_SCENE = "100400.jpg", "120000.jpg"


@pytest.fixture(scope="module")
def photos():
    folder = require_datasets("holidays_subset300") / "images"
    return {name: Image.open(folder / name).convert("RGB") for name in (PHOTO, OTHER_SCENE)}


def test_a_wide_blur_at_half_size_is_the_gaussian_within_a_grey_level(photos):
    """Away from the edges (where the two pad differently) the half-size blur is OpenCV's
    Gaussian within a grey level, on odd and even sizes alike, and the normalised grey the flow
    follows moves by a fraction of a level on average."""
    for image in photos.values():
        for size in ((384, 288), (383, 287)):
            grey = local_features.scaled_grey(np.asarray(image.resize(size))).astype(np.float32)
            exact = cv2.GaussianBlur(grey, (0, 0), alignment.FLOW_NORMALISE_SIGMA)
            half = alignment._wide_blur(grey, alignment.FLOW_NORMALISE_SIGMA)
            assert half.shape == grey.shape and half.dtype == np.float32
            assert np.abs(half - exact)[20:-20, 20:-20].max() < 1.0
            detail = grey - exact
            spread = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), alignment.FLOW_NORMALISE_SIGMA)) + 2
            before = np.clip(128 + 40 * detail / spread, 0, 255).astype(np.uint8)
            after = alignment._normalise(grey.astype(np.uint8))
            assert np.abs(after.astype(int) - before).mean() < 0.5


def counted_mirror(image: Image.Image, made: list[int]):
    def mirror():
        made.append(1)
        return verification.Query.of_image(np.asarray(ImageOps.mirror(image))).keypoints

    return mirror


def test_the_mirror_is_tried_only_where_the_photo_itself_finds_too_few_inliers(photos):
    """A collage of the photo and another scene matches it with a copy's inliers in its own
    orientation, and its pixels do not agree: no mirror is made for it (it would be extracted for
    nothing), and the verdict is the same. A mirrored copy finds too few in its own orientation:
    its mirror is tried, and it is a copy."""
    indexed = verification.Query.of_image(np.asarray(photos[PHOTO])).keypoints
    made: list[int] = []
    shot = photos[PHOTO].copy()
    width, height = shot.size
    shot.paste(photos[OTHER_SCENE].resize((width * 3 // 5, height)), (width * 2 // 5, 0))
    asked = verification.Query(
        verification.Query.of_image(np.asarray(shot)).keypoints, counted_mirror(shot, made)
    )
    every = verification.check(asked, indexed)
    assert every.inliers >= verification.COPY_INLIERS and not every.aligned and made == [1], every
    made.clear()
    asked = verification.Query(asked.keypoints, counted_mirror(shot, made))
    found = verification.check(asked, indexed, mirror_unmatched=True)
    assert found == every and not made
    mirrored = ImageOps.mirror(photos[PHOTO].rotate(4, resample=Image.Resampling.BICUBIC))
    asked = verification.Query(
        verification.Query.of_image(np.asarray(mirrored)).keypoints, counted_mirror(mirrored, made)
    )
    found = verification.check(asked, indexed, mirror_unmatched=True)
    assert found.copy and made == [1], found


@pytest.mark.parametrize("mirror", [False, True])
def test_a_thumbnails_grey_read_as_luma_is_its_rgbs_grey_within_a_level(photos, tmp_path, mirror):
    """The grey a pair's pixels are compared on, decoded from the thumbnail's luma alone, has the
    shape and frame of the grey the keypoints were found on (of the mirror image too) and its
    levels within a level on average, and three at most but at a rare clipped colour."""
    for n, image in enumerate(photos.values()):
        file = tmp_path / f"{n}.jpg"
        file.write_bytes(thumbnails.encode(image))
        rgb = np.asarray(Image.open(file).convert("RGB"))
        before = local_features.scaled_grey(local_features.mirrored(rgb) if mirror else rgb)
        after = indexed_keypoints._grey(file, mirror)
        assert after.shape == before.shape and after.dtype == np.uint8
        difference = np.abs(after.astype(int) - before)
        assert difference.mean() < 0.1 and np.quantile(difference, 0.999) <= 3
