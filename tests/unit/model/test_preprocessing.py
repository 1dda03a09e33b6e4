"""Resize policies: what part of the photo the model sees, and where the padding goes."""

import numpy as np
from helpers import PHOTOS
from PIL import Image

from search_by_image.model.preprocessing import Preprocessing

HALF = (0.5, 0.5, 0.5)


def test_keep_aspect_fits_the_longer_side_and_pads_with_the_mean():
    prep = Preprocessing(resize="keep_aspect", size=64, mean=HALF, std=HALF)
    wide = prep(Image.new("RGB", (200, 100), (255, 255, 255)))
    tall = prep(Image.new("RGB", (30, 60), (0, 0, 0)))
    assert wide.shape == (32, 64, 3) and tall.shape == (64, 32, 3)
    pixels, content = prep.batch([wide, tall])
    assert pixels.shape == (2, 3, 64, 64) and content.tolist() == [[32, 64], [64, 32]]
    assert pixels.dtype == np.float32 and content.dtype == np.int64
    assert np.allclose(pixels[0, :, :32], 1.0)  # white -> +1
    assert np.count_nonzero(pixels[0, :, 32:]) == 0  # padding = mean colour = 0
    assert np.allclose(pixels[1, :, :, :32], -1.0)  # black -> -1
    assert np.count_nonzero(pixels[1, :, :, 32:]) == 0


def test_a_batch_is_as_large_as_its_largest_content_rounded_to_the_stride():
    prep = Preprocessing(resize="keep_aspect", size=448, mean=HALF, std=HALF)
    pixels, content = prep.batch([prep(Image.new("RGB", (325, 243)))])
    assert content.tolist() == [[335, 448]] and pixels.shape == (1, 3, 352, 448)


def test_center_crop_takes_the_middle_square():
    prep = Preprocessing(resize="center_crop", size=56, mean=HALF, std=HALF)
    image = Image.new("RGB", (300, 100), (0, 0, 0))
    image.paste((255, 255, 255), (100, 0, 200, 100))  # white middle third
    pixels, content = prep.batch([prep(image)])
    assert content.tolist() == [[56, 56]]
    assert pixels.mean() > 0.9  # only the white centre survives the crop


def test_grayscale_makes_colour_and_black_and_white_copies_the_same_input():
    photo = Image.open(PHOTOS / "chelsea.jpg").convert("RGB")
    grey = Preprocessing(resize="keep_aspect", size=224, mean=(0.5,) * 3, std=(0.5,) * 3, grayscale=True)
    colour = grey(photo).astype(int)
    black_and_white = grey(photo.convert("L").convert("RGB")).astype(int)
    assert np.abs(colour - black_and_white).max() <= 2  # rounding: 2 levels of 255
    assert np.array_equal(colour[..., 0], colour[..., 1])


def test_the_resize_is_pillows_bicubic_so_older_indexes_still_match():
    """Indexes were built with `Image.resize(BICUBIC)` (and for a while torch's port of it, 1-2
    levels apart): queries see Pillow's own pixels, up and down."""
    photo = Image.open(PHOTOS / "coffee.jpg").convert("RGB")
    prep = Preprocessing(resize="keep_aspect", size=448, mean=HALF, std=HALF)
    for image in (photo, photo.resize((photo.width // 3, photo.height // 3))):
        pillow = np.asarray(image.resize(prep.resized_size(*image.size), Image.Resampling.BICUBIC))
        assert np.array_equal(prep(image), pillow)
