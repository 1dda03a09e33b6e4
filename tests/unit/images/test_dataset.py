"""The shared decode path: every image mode users throw at it comes out as oriented 8-bit RGB."""

import io

import numpy as np
import pytest
from helpers import PHOTOS, jpeg_bytes
from PIL import Image

from search_by_image.images.decoding import UnreadableImage, open_rgb
from search_by_image.indexing.image_folder import ImageFolder, list_images
from search_by_image.model.preprocessing import Preprocessing

LIMIT = 50_000_000


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def test_list_images_is_recursive_sorted_and_skips_hidden_and_non_images(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ("z.JPG", "a.png", "b/deep/c.webp", "notes.txt", ".hidden/x.jpg", "b/.y.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert list(list_images(tmp_path)) == ["a.png", "b/deep/c.webp", "z.JPG"]


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (60, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    decoded = open_rgb(encoded(image, "JPEG", exif=exif), LIMIT)
    assert decoded.size == (20, 60)


def test_exif_orientation_with_jpeg_draft_keeps_enough_pixels():
    photo = Image.open(PHOTOS / "kite.jpg").convert("RGB").resize((1600, 1200))
    exif = Image.Exif()
    exif[0x0112] = 6
    prep = Preprocessing(resize="keep_aspect", size=448, mean=(0.5,) * 3, std=(0.5,) * 3)
    decoded = open_rgb(encoded(photo, "JPEG", exif=exif), LIMIT, prep.resized_size)
    assert decoded.size[1] > decoded.size[0]  # portrait once rotated
    assert max(decoded.size) >= 448 and max(decoded.size) < 1600  # DCT-scaled, not below target


def test_cmyk_palette_and_alpha_become_rgb_on_white():
    cmyk = open_rgb(encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"), LIMIT)
    assert cmyk.mode == "RGB" and cmyk.getpixel((4, 4))[0] > 200  # red stays red

    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert open_rgb(encoded(transparent, "PNG"), LIMIT).getpixel((0, 0)) == (255, 255, 255)

    gray_alpha = Image.new("LA", (8, 8), (0, 0))
    assert open_rgb(encoded(gray_alpha, "PNG"), LIMIT).getpixel((0, 0)) == (255, 255, 255)

    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert open_rgb(encoded(palette, "PNG", transparency=0), LIMIT).getpixel((1, 1)) == (255, 255, 255)


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    values = np.full((8, 8), 32768, dtype=np.uint16)
    decoded = open_rgb(encoded(Image.fromarray(values), "PNG"), LIMIT)
    assert decoded.mode == "RGB"
    assert 120 <= decoded.getpixel((0, 0))[0] <= 135


def test_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), color) for color in ("blue", "yellow")]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    red, green, blue = open_rgb(data, LIMIT).getpixel((4, 4))
    assert blue > 200 and red < 50


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"definitely not an image", "not_image"),
        (jpeg_bytes(Image.open(PHOTOS / "coffee.jpg"))[:4000], "corrupt"),
    ],
    ids=["text", "truncated-jpeg"],
)
def test_unusable_bytes_raise_with_a_reason(data, kind):
    with pytest.raises(UnreadableImage) as caught:
        open_rgb(data, LIMIT)
    assert caught.value.kind == kind and caught.value.reason


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(UnreadableImage) as caught:
        open_rgb(encoded(Image.new("RGB", (200, 100)), "PNG"), max_pixels=10_000)
    assert caught.value.kind == "too_large" and "20000" in caught.value.reason


def test_image_folder_reports_failures_and_keeps_indices_aligned(tmp_path):
    (tmp_path / "good.jpg").write_bytes((PHOTOS / "chelsea.jpg").read_bytes())
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "good2.png").write_bytes(encoded(Image.open(PHOTOS / "coffee.jpg"), "PNG"))
    prep = Preprocessing(resize="keep_aspect", size=128, mean=(0.5,) * 3, std=(0.5,) * 3)
    folder = ImageFolder(tmp_path, ["good.jpg", "bad.jpg", "good2.png"], prep, LIMIT)
    batch = ImageFolder.collate([folder[i] for i in range(3)])
    assert batch.indices == [0, 2]
    assert [i for i, _ in batch.failed] == [1]
    assert [p.shape for p in batch.prepared] == [(85, 128, 3), (85, 128, 3)]
