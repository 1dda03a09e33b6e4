"""Capture times read from the EXIF that cameras and phones write (encoded here by the libraries
in each format that carries it), and which two of them are two shots."""

from datetime import datetime, timedelta

import pytest
from helpers import PHOTOS, encoded, taken_at
from PIL import Image

from search_by_image.images import capture_time
from search_by_image.images.capture_time import CaptureTime


@pytest.fixture(scope="module")
def photo():
    return Image.open(PHOTOS / "dog.jpg").convert("RGB")


def at(moment: str, fraction: float | None = None) -> CaptureTime:
    taken = datetime.strptime(moment, "%Y:%m:%d %H:%M:%S")
    return CaptureTime(taken, None if fraction is None else timedelta(seconds=fraction))


@pytest.mark.parametrize("format", ["JPEG", "HEIF", "WEBP", "AVIF", "TIFF"])
def test_the_moment_a_camera_wrote_is_read_from_the_file_or_the_upload(photo, format, tmp_path):
    data = encoded(photo, format, exif=taken_at("2024:05:01 10:11:12", "45"))
    file = tmp_path / f"photo.{format.lower()}"
    file.write_bytes(data)
    assert capture_time.read(data) == capture_time.read(file) == at("2024:05:01 10:11:12", 0.45)


def test_photos_without_a_capture_time_have_none(photo, tmp_path):
    assert capture_time.read(encoded(photo, "JPEG")) is None  # stripped, as messaging apps do
    assert capture_time.read(encoded(photo, "JPEG", exif=taken_at("0000:00:00 00:00:00"))) is None
    assert capture_time.read(encoded(photo, "JPEG", exif=taken_at("yesterday"))) is None
    # a PNG's EXIF may come after its pixels: not read (it would cost a decode)
    assert capture_time.read(encoded(photo, "PNG", exif=taken_at("2024:05:01 10:11:12"))) is None
    assert capture_time.read(b"not an image") is None
    assert capture_time.read(tmp_path / "gone.jpg") is None


def test_a_burst_s_frames_are_two_shots_a_corrected_date_is_not():
    moment = at("2024:05:01 10:11:12")
    assert capture_time.apart(moment, at("2024:05:01 10:11:13"))  # the next second
    assert capture_time.apart(at("2024:05:01 10:11:12", 0.45), at("2024:05:01 10:11:12", 0.46))
    assert capture_time.apart(moment, at("2024:05:01 10:20:00"))  # a re-shot from the same spot
    # one second for both when either lacks the fraction; the same moment; a time-zone fix
    assert not capture_time.apart(at("2024:05:01 10:11:12", 0.45), moment)
    assert not capture_time.apart(moment, at("2024:05:01 10:11:12"))
    assert not capture_time.apart(moment, at("2024:05:01 12:11:12"))
    assert not capture_time.apart(moment, None) and not capture_time.apart(None, None)
    # "5" and "50" are both half a second
    half, fifty = (
        capture_time.read(encoded(Image.new("RGB", (8, 8)), "JPEG", exif=taken_at("2024:05:01 10:11:12", f)))
        for f in ("5", "50")
    )
    assert half == fifty == at("2024:05:01 10:11:12", 0.5)


def test_implausible_capture_times_are_ignored(photo):
    """A clock set to year 9999 (with a fraction that rounds past it) or before photography:
    no capture time, never an overflow when two are compared."""
    small = photo.resize((64, 48))
    far = capture_time.read(encoded(small, "JPEG", exif=taken_at("9999:12:31 23:59:59", "9" * 30)))
    assert far is None and not capture_time.apart(far, far)
    assert capture_time.read(encoded(small, "JPEG", exif=taken_at("1066:10:14 09:00:00"))) is None
    tomorrow = (datetime.now() + timedelta(days=2)).strftime("%Y:%m:%d %H:%M:%S")
    assert capture_time.read(encoded(small, "JPEG", exif=taken_at(tomorrow))) is None
    assert capture_time.read(encoded(small, "JPEG", exif=taken_at("1900:01:01 00:00:00"))) is not None
