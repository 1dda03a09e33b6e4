"""What a duplicates pass's checks cost less for, and still say: the flow's contrast normalised
with a blur at half size, and a mirror's grey read as a JPEG's luma."""

import cv2
import numpy as np
import pytest
from helpers import require_datasets
from PIL import Image

from search_by_image.catalog import thumbnails
from search_by_image.ranking import alignment, indexed_keypoints, local_features

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


def test_a_thumbnails_mirror_grey_read_as_luma_is_its_rgbs_within_a_level(photos, tmp_path):
    """The grey a mirror's keypoints are extracted from, and its pixels compared on, decoded
    from the thumbnail's luma alone, has the shape and frame of its RGB's grey and its levels
    within a level on average, three at most but at a rare clipped colour; the image's own
    grey is its RGB's, as its stored keypoints were found on."""
    for n, image in enumerate(photos.values()):
        file = tmp_path / f"{n}.jpg"
        file.write_bytes(thumbnails.encode(image))
        rgb = np.asarray(Image.open(file).convert("RGB"))
        assert (indexed_keypoints._grey(file) == local_features.scaled_grey(rgb)).all()
        before = local_features.scaled_grey(local_features.mirrored(rgb))
        after = indexed_keypoints._grey(file, mirror=True)
        assert after.shape == before.shape and after.dtype == np.uint8
        difference = np.abs(after.astype(int) - before)
        assert difference.mean() < 0.1 and np.quantile(difference, 0.999) <= 3
