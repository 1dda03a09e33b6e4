"""When a photo was taken, from its EXIF: what tells two frames of a burst apart when their pixels
cannot.

The copy rule (verification.py) asks the pixels whether two photos are one picture edited: once
aligned they must agree and not move. Frames of a burst shot from one spot where nothing moved
pass it: at the size the verifier compares they are the same picture (bench/README.md, "Copies or
another shot": 9 of the 19 pairs of Holidays shots that still pass are such bursts). A camera
stamps each frame with the moment it was taken (DateTimeOriginal, to the second, and on phones
and most cameras SubSecTimeOriginal, its fraction), and editors keep that tag (they rewrite
DateTime, the modification date). So two photos that both carry a capture time, and differ in
it, are two shots whatever their pixels say. A photo without one (stripped by a messaging app,
a screenshot, a scan, the Holidays thumbnails) leaves the decision to the pixels.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image

from search_by_image import formats

#: Pillow formats whose EXIF is read from the file's header, without decoding its pixels (a
#: PNG's eXIf chunk may follow the image data: Pillow decodes the image to find it).
CHEAP_EXIF = frozenset({"JPEG", "MPO", "WEBP", "TIFF", "HEIF", "AVIF"})
_TAKEN = re.compile(r"\d{4}:\d\d:\d\d \d\d:\d\d:\d\d")


@dataclass(frozen=True)
class CaptureTime:
    #: DateTimeOriginal, "YYYY:MM:DD HH:MM:SS" (the camera's clock, no time zone)
    taken: str
    #: SubSecTimeOriginal's digits (fractions of that second: "05" = 0.05 s), if the camera wrote it
    fraction: str | None = None

    def apart_from(self, other: CaptureTime) -> bool:
        """Whether the two say different moments. The fraction counts only where both have one:
        a burst from a camera without it is one second for both frames (the pixels decide)."""
        if self.taken != other.taken:
            return True
        if self.fraction is None or other.fraction is None:
            return False
        return self.fraction.ljust(9, "0")[:9] != other.fraction.ljust(9, "0")[:9]


def apart(first: CaptureTime | None, second: CaptureTime | None) -> bool:
    """Two shots by their capture times: both known, and different."""
    return first is not None and second is not None and first.apart_from(second)


def of_image(image: Image.Image) -> CaptureTime | None:
    """An opened (not necessarily decoded) image's capture time; None without one, for formats
    whose EXIF costs a decode (CHEAP_EXIF), and for a tag that is not a time (zeros, blanks)."""
    if image.format not in CHEAP_EXIF:
        return None
    exif = image.getexif().get_ifd(ExifTags.IFD.Exif)
    taken = _text(exif.get(ExifTags.Base.DateTimeOriginal))
    if taken is None or not _TAKEN.fullmatch(taken) or taken.startswith("0000"):
        return None
    fraction = _text(exif.get(ExifTags.Base.SubsecTimeOriginal))
    return CaptureTime(taken, fraction if fraction and fraction.isdigit() else None)


def read(source: Path | bytes) -> CaptureTime | None:
    """A file's or an upload's capture time (None if it has none, or cannot be opened)."""
    try:
        with Image.open(
            io.BytesIO(source) if isinstance(source, bytes) else source, formats=formats.PILLOW_NAMES
        ) as image:
            return of_image(image)
    except Exception:  # noqa: BLE001 - optional evidence: a damaged file or EXIF block is no time
        return None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    return value.strip("\x00 ") or None
