"""Resize policies: what part of the photo the model sees, and where the padding goes."""

import torch
from PIL import Image

from conftest import PHOTOS
from search_by_image.preprocessing import Preprocessing

HALF = (0.5, 0.5, 0.5)


def test_keep_aspect_fits_the_longer_side_and_pads_with_the_mean():
    prep = Preprocessing(resize="keep_aspect", size=64, mean=HALF, std=HALF)
    pixels, (height, width) = prep(Image.new("RGB", (200, 100), (255, 255, 255)))
    assert pixels.shape == (3, 64, 64) and (height, width) == (32, 64)
    assert torch.allclose(pixels[:, :32], torch.ones(3, 32, 64))  # white -> +1
    assert torch.count_nonzero(pixels[:, 32:]) == 0  # padding = mean colour = 0


def test_center_crop_takes_the_middle_square():
    prep = Preprocessing(resize="center_crop", size=56, mean=HALF, std=HALF)
    image = Image.new("RGB", (300, 100), (0, 0, 0))
    image.paste((255, 255, 255), (100, 0, 200, 100))  # white middle third
    pixels, content = prep(image)
    assert content == (56, 56)
    assert pixels.mean() > 0.9  # only the white centre survives the crop


def test_grayscale_makes_colour_and_black_and_white_copies_the_same_input():
    photo = Image.open(PHOTOS / "chelsea.jpg").convert("RGB")
    grey = Preprocessing(resize="keep_aspect", size=224, mean=(0.5,) * 3, std=(0.5,) * 3, grayscale=True)
    colour, _ = grey(photo)
    black_and_white, _ = grey(photo.convert("L").convert("RGB"))
    assert (colour - black_and_white).abs().max() <= 4 / 255  # rounding: 2 levels of 255, normalised
    assert torch.equal(colour[0], colour[1])
