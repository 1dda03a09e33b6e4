"""Phone and camera formats through the one decode path, and the one list of formats.

HEIC and AVIF files are encoded here from real photos by the libraries users' files come from
(libheif/x265 through pillow-heif, libavif through Pillow); the DNG is a Bayer mosaic of a real
photo written by PiDNG, which LibRaw demosaics as it would a camera's.
"""

import contextlib

import numpy as np
import pytest
from helpers import PHOTOS, dng_bytes, encoded
from PIL import Image

from search_by_image.images import camera_raw, formats
from search_by_image.images.decoding import UnreadableImage, open_rgb
from search_by_image.indexing.image_folder import list_images
from search_by_image.model.preprocessing import Preprocessing

LIMIT = 50_000_000
#: x265's fastest preset: a 2 MP HEIC in 1 s instead of 5 (the file a phone writes is no different to read)
FAST_HEIC = {"enc_params": {"preset": "ultrafast"}}
PHOTO = Image.open(PHOTOS / "chelsea.jpg").convert("RGB")


def close_to(image: Image.Image, reference: Image.Image, tolerance: float) -> bool:
    """Mean absolute difference per channel level, at a common small size."""
    size = (96, 64)
    a = np.asarray(image.convert("RGB").resize(size), dtype=np.float32)
    b = np.asarray(reference.convert("RGB").resize(size), dtype=np.float32)
    return float(np.abs(a - b).mean()) < tolerance


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_decode_like_the_photo(fmt):
    decoded = open_rgb(encoded(PHOTO, fmt, quality=80, **(FAST_HEIC if fmt == "HEIF" else {})), LIMIT)
    assert decoded.mode == "RGB" and decoded.size == PHOTO.size
    assert close_to(decoded, PHOTO, 4)


def test_a_multi_image_heic_gives_its_primary_image():
    other = PHOTO.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((300, 200))
    data = encoded(
        PHOTO, "HEIF", save_all=True, append_images=[other], primary_index=1, quality=80, **FAST_HEIC
    )
    decoded = open_rgb(data, LIMIT)
    assert decoded.size == (300, 200) and close_to(decoded, other, 4)


def test_heic_decodes_its_embedded_thumbnail_when_the_model_needs_no_more():
    big = PHOTO.resize((1200, 800))
    data = encoded(big, "HEIF", quality=70, thumbnails=[480], **FAST_HEIC)
    target = Preprocessing(resize="keep_aspect", size=448, mean=(0, 0, 0), std=(1, 1, 1)).resized_size
    reduced = open_rgb(data, LIMIT, target)
    assert reduced.size == (480, 320) and close_to(reduced, big, 6)
    assert open_rgb(data, LIMIT).size == (1200, 800)  # no target: the full image


def test_a_dng_is_demosaiced_at_half_size_when_that_is_enough():
    data = dng_bytes(PHOTO)
    assert formats.identify(data).name == "DNG"
    full = open_rgb(data, LIMIT)
    assert full.size == (450, 300) and close_to(full, PHOTO, 40)
    half = open_rgb(data, LIMIT, lambda w, h: (w // 3, h // 3))
    assert half.size == (225, 150)
    # the sensor's colours survive: a ginger cat stays redder than blue
    red, _, blue = np.asarray(full, dtype=np.float32).reshape(-1, 3).mean(axis=0)
    assert red > blue + 20


def test_a_rotated_dng_comes_out_upright():
    decoded = open_rgb(dng_bytes(PHOTO, orientation=6), LIMIT)
    assert decoded.size == (300, 450)
    assert close_to(decoded, PHOTO.transpose(Image.Transpose.ROTATE_270), 40)


def test_camera_raw_pixels_are_checked_before_decoding():
    with pytest.raises(UnreadableImage) as caught:
        open_rgb(dng_bytes(PHOTO), 10_000)
    assert caught.value.kind == "too_large"


def test_a_raw_file_s_whole_sensor_counts_against_the_pixel_limit(monkeypatch):
    """A DNG whose active area says 64x64 over a 2000x2000 sensor: LibRaw would unpack the whole
    sensor, so the sensor's size is what is checked, before anything is unpacked."""
    from search_by_image.images import decoding

    small_claim = dng_bytes(PHOTO.resize((2000, 2000)), active_area=(0, 0, 64, 64))
    monkeypatch.setattr(decoding.decode_budget, "hold", None)  # never reached
    with pytest.raises(UnreadableImage) as caught:
        open_rgb(small_claim, 1_000_000)
    assert caught.value.kind == "too_large" and "2000x2000" in str(caught.value)


def test_a_camera_preview_is_used_when_large_enough_and_turned_like_the_raw():
    preview = encoded(PHOTO, "JPEG", quality=90)

    class Thumb:
        format, data = camera_raw.rawpy.ThumbFormat.JPEG, preview

    class Raw:  # what rawpy reports of a camera file shot in portrait (LibRaw flip 6)
        sizes = type("Sizes", (), {"flip": 6})

        @staticmethod
        def extract_thumb():
            return Thumb

    decode = lambda data: open_rgb(data, LIMIT)  # noqa: E731
    used = camera_raw._preview(Raw, 400, decode)
    assert used.size == PHOTO.size[::-1] and close_to(used, PHOTO.transpose(Image.Transpose.ROTATE_270), 4)
    assert camera_raw._preview(Raw, 600, decode) is None  # too small: demosaic instead


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"%PDF-1.4 a document", "PDF files are not supported"),
        (b"\xff\x0a\x00\x10 jxl codestream", "JPEG XL files are not supported"),
        (b"\x00\x00\x00\x18ftypqt  \x00\x00\x00\x00qt  ", "video files are not supported"),
        (encoded(PHOTO, "PCX"), "PCX files are not supported"),
        (b"plain text, nothing more", "not a recognised image format"),
    ],
    ids=["pdf", "jpeg-xl", "video", "pcx", "text"],
)
def test_an_unsupported_format_is_named_with_the_supported_ones(data, named):
    with pytest.raises(UnreadableImage) as caught:
        open_rgb(data, LIMIT)
    assert caught.value.kind == "not_image"
    assert named in caught.value.reason and "HEIC" in caught.value.reason and "DNG" in caught.value.reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF", "PPM", "ICO"])
def test_every_format_read_is_stored_under_a_suffix_the_indexer_scans(fmt, tmp_path):
    data = encoded(PHOTO.resize((64, 48)), fmt, **({"sizes": [(64, 48)]} if fmt == "ICO" else {}))
    found = formats.identify(data)
    name = f"added{formats.stored_suffix(found.name)}"
    (tmp_path / name).write_bytes(data)
    assert list(list_images(tmp_path)) == [name]
    assert open_rgb(tmp_path / name, LIMIT).size == (64, 48)


def test_the_list_covers_phone_and_camera_formats_and_the_page_accepts_them():
    names = {f.name for f in formats.FORMATS}
    assert {"HEIC", "AVIF", "DNG", "CR2", "CR3", "NEF", "ARW", "ORF", "RW2"} <= names
    accept = formats.accept_attribute().split(",")
    assert {".heic", ".avif", ".dng", ".nef", "image/heic", "image/jpeg"} <= set(accept)
    assert {s for s in accept if s.startswith(".")} == formats.SUFFIXES


def test_a_demosaic_holds_its_memory_from_the_decode_budget(monkeypatch):
    from search_by_image.images import decoding

    held = []

    class Recording:
        @contextlib.contextmanager
        def hold(self, cost, wait=None):
            held.append(cost)
            yield

    monkeypatch.setattr(decoding, "decode_budget", Recording())
    open_rgb(dng_bytes(PHOTO), LIMIT)
    assert held and held[0] >= 450 * 300 * camera_raw.WORKING_BYTES_PER_PIXEL
