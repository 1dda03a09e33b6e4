"""When a photo was taken, from its EXIF: what tells two frames of a burst apart when their pixels
cannot.

The copy rule (verification.py) asks the pixels whether two photos are one picture edited: once
aligned they must agree and not move. Frames of a burst shot from one spot where nothing moved
pass it: at the size the verifier compares they are the same picture (bench/README.md, "Copies or
another shot": 9 of the 19 pairs of Holidays shots that still pass are such bursts). A camera
stamps each frame with the moment it was taken (DateTimeOriginal, to the second, and on phones
and most cameras SubSecTimeOriginal, its fraction), and editors keep that tag (they rewrite
DateTime, the modification date). So two photos that both carry a capture time, and differ in
it by less than SHOTS_WITHIN, are two shots whatever their pixels say. Further apart, the same
pixels are likelier one photo whose date was corrected (a time-zone fix moves it by whole or half
hours) than two shots where nothing moved. A photo without a capture time (stripped by a
messaging app, a screenshot, a scan, the Holidays thumbnails; camera raw files Pillow cannot open:
CR3, RAF, ORF, RW2) leaves the decision to the pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import ExifTags, Image

from search_by_image.images import formats

#: Pillow formats whose EXIF is read from the file's header, without decoding its pixels (a
#: PNG's eXIf chunk may follow the image data: Pillow decodes the image to find it).
CHEAP_EXIF = frozenset({"JPEG", "MPO", "WEBP", "TIFF", "HEIF", "AVIF"})
#: Photos taken this close together are two shots (a burst, a bracket, a re-shot from one spot).
SHOTS_WITHIN = timedelta(minutes=10)
#: Capture times before the first photograph, or more than a day ahead of this machine's clock
#: (a camera's clock has no time zone), are a clock never set or a forged tag: ignored. Bounded,
#: the fraction added to them never overflows datetime's range.
EARLIEST = datetime(1826, 1, 1)
AHEAD = timedelta(days=1)


@dataclass(frozen=True)
class CaptureTime:
    #: DateTimeOriginal (the camera's clock, no time zone), to the second
    taken: datetime
    #: SubSecTimeOriginal as a fraction of that second, if the camera wrote it
    fraction: timedelta | None = None

    def apart_from(self, other: CaptureTime) -> bool:
        """Whether the two are different moments under SHOTS_WITHIN apart. The fraction counts
        only where both have one: a burst from a camera without it is one second for both frames
        (the pixels decide)."""
        gap = abs(self.taken - other.taken)
        if self.fraction is not None and other.fraction is not None:
            gap = abs(self.taken + self.fraction - other.taken - other.fraction)
        return timedelta(0) < gap < SHOTS_WITHIN


def apart(first: CaptureTime | None, second: CaptureTime | None) -> bool:
    """Two shots by their capture times: both known, and apart."""
    return first is not None and second is not None and first.apart_from(second)


def of_image(image: Image.Image) -> CaptureTime | None:
    """An opened (not necessarily decoded) image's capture time; None without one, for formats
    whose EXIF costs a decode (CHEAP_EXIF), and for a tag that is not a plausible time (zeros,
    blanks, outside EARLIEST to AHEAD of now)."""
    if image.format not in CHEAP_EXIF:
        return None
    exif = image.getexif().get_ifd(ExifTags.IFD.Exif)
    try:
        taken = datetime.strptime(_text(exif.get(ExifTags.Base.DateTimeOriginal)), "%Y:%m:%d %H:%M:%S")
    except (TypeError, ValueError):  # missing, zeros, blanks, not a date
        return None
    if not EARLIEST <= taken <= datetime.now() + AHEAD:
        return None
    digits = _text(exif.get(ExifTags.Base.SubsecTimeOriginal))
    fraction = timedelta(seconds=float(f"0.{digits}")) if digits.isascii() and digits.isdigit() else None
    return CaptureTime(taken, fraction)


def read(source: Path | bytes) -> CaptureTime | None:
    """A file's or an upload's capture time (None if it has none, or cannot be opened)."""
    try:
        with Image.open(
            io.BytesIO(source) if isinstance(source, bytes) else source, formats=formats.PILLOW_NAMES
        ) as image:
            return of_image(image)
    except Exception:  # noqa: BLE001 - optional evidence: a damaged file or EXIF block is no time
        return None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value.strip("\x00 ") if isinstance(value, str) else ""
