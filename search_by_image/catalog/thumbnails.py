"""Small JPEG copies of a collection's images for the result grids (the page, the no-JS page, the
duplicates page), kept in the collection's saved folder under `thumbnails/`.

Made where the image is already decoded: by the indexer's decode workers in the same pass that
feeds the model (from the DCT-scaled decode, so it costs a resize and a small JPEG encode), and by
an API add from the upload it decoded. An image without one (indexed before thumbnails existed,
or by the Ray engine) gets it on its first request, and keeps it. A page of results then
downloads a few dozen kilobytes instead of megabytes of originals (bench/README.md, "Thumbnails"
and "Figures behind the code's choices").

A thumbnail's name hashes the image's path and fingerprint (size, mtime), so a changed file never
shows a stale thumbnail and its URL (which carries the same hash) can be cached for a year. The
indexer prunes thumbnails of images no longer indexed; a delete removes its image's at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from search_by_image.layout import THUMBNAILS_DIR

#: Longest side: the bundled models' input size, so the indexer encodes the pixels it already
#: resized for the model instead of resizing again (`thumbnail_source`: 3 ms of a 12 MP JPEG's
#: ~40 ms, bench/README.md, "Camera-size photos"); sharp in the page's ~200-300 CSS px cards at
#: 1.5x pixel density.
THUMBNAIL_PX = 448
#: libjpeg quality: a 448 px photo in tens of KB, where WebP would take several times as long to
#: encode (bench/README.md, "Figures behind the code's choices").
QUALITY = 80
SUFFIX = ".jpg"

Fingerprint = tuple[int, int]


def version(path: str, fingerprint: Fingerprint) -> str:
    """What names a thumbnail and versions its URL: changes whenever the image file does."""
    size, mtime_ns = fingerprint
    return hashlib.sha256(f"{path}\0{size}\0{mtime_ns}".encode()).hexdigest()[:24]


def encode(image: Image.Image) -> bytes:
    """An RGB image as a thumbnail JPEG."""
    small = image.copy() if max(image.size) > THUMBNAIL_PX else image
    small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, format="JPEG", quality=QUALITY)
    return buffer.getvalue()


def thumbnail_source(decoded: Image.Image, prepared: np.ndarray, whole: bool) -> Image.Image:
    """What the indexer makes an image's thumbnail from: the model's input (uint8 pixels) when
    it is the `whole` image in colour, shrunk, and at least THUMBNAIL_PX (no second resize of the
    decode); else the decoded image (a small one is not enlarged, a crop is not a thumbnail)."""
    side = max(prepared.shape[:2])
    if whole and THUMBNAIL_PX <= side <= max(decoded.size):
        return Image.fromarray(prepared)
    return decoded


def covering(size_for: Callable[[int, int], tuple[int, int]] | None) -> Callable[[int, int], tuple[int, int]]:
    """A decode size at least as large as both the model's `size_for` and a thumbnail, so one
    reduced-size decode serves both (the bundled models' 448 px input is a thumbnail's size)."""

    def size(width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, THUMBNAIL_PX / max(width, height))
        thumb = (max(1, round(width * scale)), max(1, round(height * scale)))
        model = size_for(width, height) if size_for else thumb
        return max(model[0], thumb[0]), max(model[1], thumb[1])

    return size


class Thumbnails:
    """The thumbnails folder of one collection."""

    def __init__(self, saved_dir: Path):
        self.saved_dir = saved_dir
        self.folder = saved_dir / THUMBNAILS_DIR

    def file(self, path: str, fingerprint: Fingerprint) -> Path:
        name = version(path, fingerprint)
        return self.folder / name[:2] / f"{name}{SUFFIX}"

    def write(self, path: str, fingerprint: Fingerprint, image: Image.Image) -> Path:
        """Atomically (a temporary name of this thread's, then a rename), so a reader never sees
        half a file, even while another thread makes the same thumbnail."""
        target = self.file(path, fingerprint)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            staged.write_bytes(encode(image))
            os.replace(staged, target)
        finally:
            staged.unlink(missing_ok=True)
        return target

    def write_quietly(self, path: str, fingerprint: Fingerprint, image: Image.Image) -> None:
        """For the indexer and adds: a thumbnail that cannot be written (disk full, read-only
        saved folder) is made on its first request instead; it never fails the image."""
        with contextlib.suppress(OSError):
            self.write(path, fingerprint, image)

    def remove(self, path: str, fingerprint: Fingerprint) -> None:
        with contextlib.suppress(OSError):
            self.file(path, fingerprint).unlink(missing_ok=True)

    def prune(self, files: dict[str, Fingerprint] | Iterable[tuple[str, Fingerprint]]) -> int:
        """Remove every thumbnail (and leftover temporary file) not of these images; how many."""
        items = files.items() if isinstance(files, dict) else files
        keep = {f"{version(path, tuple(fp))}{SUFFIX}" for path, fp in items}
        removed = 0
        if not self.folder.is_dir():
            return 0
        for entry in self.folder.glob("*/*"):
            if entry.name not in keep:
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed += 1
        return removed
