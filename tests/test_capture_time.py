"""Capture times read from the EXIF that cameras and phones write (JPEG, HEIC, WebP encoded here by
the libraries), and what makes two of them different moments."""

import pytest
from helpers import PHOTOS, encoded, taken_at
from PIL import Image

from search_by_image import capture_time
from search_by_image.capture_time import CaptureTime


@pytest.fixture(scope="module")
def photo():
    return Image.open(PHOTOS / "dog.jpg").convert("RGB")


@pytest.mark.parametrize("format", ["JPEG", "HEIF", "WEBP"])
def test_the_moment_a_camera_wrote_is_read_from_the_file_or_the_upload(photo, format, tmp_path):
    data = encoded(photo, format, exif=taken_at("2024:05:01 10:11:12", "45"))
    file = tmp_path / f"photo.{format.lower()}"
    file.write_bytes(data)
    assert capture_time.read(data) == capture_time.read(file) == CaptureTime("2024:05:01 10:11:12", "45")


def test_photos_without_a_capture_time_have_none(photo, tmp_path):
    assert capture_time.read(encoded(photo, "JPEG")) is None  # stripped, as messaging apps do
    assert capture_time.read(encoded(photo, "JPEG", exif=taken_at("0000:00:00 00:00:00"))) is None
    assert capture_time.read(encoded(photo, "JPEG", exif=taken_at("yesterday"))) is None
    # a PNG's EXIF may come after its pixels: not read (it would cost a decode)
    assert capture_time.read(encoded(photo, "PNG", exif=taken_at("2024:05:01 10:11:12"))) is None
    assert capture_time.read(b"not an image") is None
    assert capture_time.read(tmp_path / "gone.jpg") is None


def test_frames_a_second_or_a_fraction_apart_are_other_moments():
    moment = CaptureTime("2024:05:01 10:11:12")
    assert CaptureTime("2024:05:01 10:11:13").apart_from(moment)
    assert CaptureTime("2024:05:01 10:11:12", "45").apart_from(CaptureTime("2024:05:01 10:11:12", "46"))
    # "5" and "50" are both half a second; without a fraction on one side, one second is all we know
    assert not CaptureTime("2024:05:01 10:11:12", "5").apart_from(CaptureTime("2024:05:01 10:11:12", "50"))
    assert not CaptureTime("2024:05:01 10:11:12", "45").apart_from(moment)
    assert not capture_time.apart(moment, None) and not capture_time.apart(None, None)
    assert capture_time.apart(moment, CaptureTime("2023:05:01 10:11:12"))
