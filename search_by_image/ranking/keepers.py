"""Which image of a duplicate group to keep: the suggestion, and the facts it is made from.

The rule (RULE, shown to users): the most pixels first (the original, not a downscaled or
cropped copy), then the earliest capture time (the camera's file, not a re-saved export), then
the largest file (the least recompressed). The facts come from each file's header and EXIF
(no decode) and its size on disk; a file that cannot be read loses every comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from search_by_image.images import capture_time, formats

RULE = "the most pixels, then the earliest capture time, then the largest file"


@dataclass(frozen=True)
class Facts:
    """What the rule compares of one image."""

    id: int
    path: str
    width: int = 0
    height: int = 0
    #: when the photo was taken (EXIF), None when unknown
    taken: datetime | None = None
    bytes: int = 0

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def rank(self) -> tuple:
        """Sorts the keeper first: pixels down, known capture time up (unknown last), size down;
        the path last, so ties always fall the same way."""
        taken = self.taken.timestamp() if self.taken is not None else float("inf")
        return (-self.pixels, taken, -self.bytes, self.path)


def facts(image_id: int, path: str, file: Path | None) -> Facts:
    """The facts of the image at `file` (empty ones when it is missing or unreadable)."""
    if file is None:
        return Facts(image_id, path)
    try:
        size = file.stat().st_size
    except OSError:
        return Facts(image_id, path)
    try:
        with Image.open(file, formats=formats.PILLOW_NAMES) as image:
            width, height = image.size
            shot = capture_time.of_image(image)
    except Exception:  # noqa: BLE001 - an unreadable file is a poor keeper, not an error
        return Facts(image_id, path, bytes=size)
    taken = None if shot is None else shot.taken + (shot.fraction or timedelta(0))
    return Facts(image_id, path, width, height, taken, size)


def suggested(members: list[Facts]) -> Facts:
    """The image the rule keeps."""
    return min(members, key=Facts.rank)
